"""Block-scale shapes shared by the fp8 ops."""

from __future__ import annotations

from ..base import expect, expect_dtype, positive
from ..types import FLOAT_DTYPES, FP8_DTYPES, TensorInfo

E4M3_MAX = 448.0


def ceil_div(a: int | None, b: int) -> int | None:
    """``ceil(a / b)``, None for a dynamic size."""
    return None if a is None else -(-a // b)


def scale_shape(shape: tuple[int | None, ...], block_shape: list[int]) -> tuple[int | None, ...]:
    """Shape of the scales of a tensor cut into `block_shape` blocks over its trailing dims."""
    lead = len(shape) - len(block_shape)
    return (*shape[:lead], *(ceil_div(d, b) for d, b in zip(shape[lead:], block_shape)))


def check_block_shape(t: TensorInfo, name: str, block_shape: list[int]) -> None:
    """`block_shape` is 1..rank positive sizes."""
    expect(
        1 <= len(block_shape) <= t.rank,
        f"block_shape {block_shape} must have 1 to {t.rank} entries for {name} of rank {t.rank}",
    )
    for b in block_shape:
        positive(b, "block_shape")


def check_scaled_matmul_operands(
    x_q: TensorInfo,
    x_scale: TensorInfo,
    w_q: TensorInfo,
    w_scale: TensorInfo,
    block_n: int,
    block_k: int,
    out_dtype: str,
) -> None:
    """What every block-scaled FP8 matmul requires: positive blocks, a float output type,
    float8 operands and fp32 scales."""
    positive(block_n, "block_n")
    positive(block_k, "block_k")
    expect(
        out_dtype in FLOAT_DTYPES, f"attribute 'out_dtype' must be a float dtype, got '{out_dtype}'"
    )
    expect_dtype(x_q, "x_q", FP8_DTYPES)
    expect_dtype(w_q, "w_q", FP8_DTYPES)
    expect_dtype(x_scale, "x_scale", {"float32"})
    expect_dtype(w_scale, "w_scale", {"float32"})
