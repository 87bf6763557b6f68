"""Checks shared by the ops that consume a router's output."""

from __future__ import annotations

from ..base import expect_dim, expect_dtype, expect_float, expect_rank
from ..types import INT_DTYPES, TensorInfo


def expect_routing(weights: TensorInfo, indices: TensorInfo, tokens: int | None) -> None:
    """`weights` (float) and `indices` (int) are both ``[tokens, top_k]``."""
    expect_float(weights, "weights")
    expect_rank(weights, "weights", 2)
    expect_rank(indices, "indices", 2)
    expect_dtype(indices, "indices", INT_DTYPES)
    expect_dim(weights.shape[0], tokens, "weights rows (tokens)")
    expect_dim(indices.shape[0], tokens, "indices rows (tokens)")
    expect_dim(indices.shape[1], weights.shape[1], "indices columns (top_k)")
