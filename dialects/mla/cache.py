"""Shape rules of the latent KV cache operands (contiguous or paged, see
docs/execution-contract.md)."""

from __future__ import annotations

from ..base import expect_dim, expect_dtype, expect_float, expect_rank
from ..types import INT_DTYPES, TensorInfo


def cache_slots(
    cache: TensorInfo, block_table: TensorInfo | None, entry: int | None, name: str = "kv_cache"
) -> tuple[int | None, int | None]:
    """Checks a cache operand; returns its (batch, logical slots per sequence).

    Contiguous: `cache` is ``[B, T, E]``. Paged: `cache` is a pool ``[N, block_size, E]`` and
    `block_table` ``[B, M]`` (integer block ids); a sequence has ``M * block_size`` slots.
    """
    expect_float(cache, name)
    expect_rank(cache, name, 3)
    expect_dim(cache.shape[2], entry, f"{name} entry size (kv_lora_rank + qk_rope_head_dim)")
    if block_table is None:
        return cache.shape[0], cache.shape[1]
    expect_rank(block_table, "block_table", 2)
    expect_dtype(block_table, "block_table", INT_DTYPES)
    blocks, block_size = block_table.shape[1], cache.shape[1]
    slots = None if blocks is None or block_size is None else blocks * block_size
    return block_table.shape[0], slots
