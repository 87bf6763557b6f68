"""Checks shared by the ops that split ``wkv_b`` into per-head W_UK / W_UV blocks."""

from ..base import expect_matrix, positive
from ..types import TensorInfo


def expect_head_dims(num_heads: int, qk_nope_head_dim: int, v_head_dim: int) -> None:
    """The head attributes are positive."""
    positive(num_heads, "num_heads")
    positive(qk_nope_head_dim, "qk_nope_head_dim")
    positive(v_head_dim, "v_head_dim")


def expect_wkv_b(
    wkv_b: TensorInfo, latent: int | None, num_heads: int, qk_nope_head_dim: int, v_head_dim: int
) -> None:
    """``wkv_b`` is ``[H * (dn + dv), latent]``."""
    expect_matrix(wkv_b, "wkv_b", num_heads * (qk_nope_head_dim + v_head_dim), latent)
