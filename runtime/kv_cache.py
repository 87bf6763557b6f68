"""The runtime-owned latent KV cache of a compiled causal LM (docs/execution-contract.md).

One buffer per layer, allocated once and updated in place by every prefill/decode call:
contiguous ``[B, L, E]``, or a paged pool ``[N, block_size, E]`` with a ``[B, M]`` block
table. Rows are sequence slots (``B`` is the compiled maximum batch). In the paged layout a
row owns the blocks its tokens reach, taken from a free list as it grows and given back when
it ends; block 0 is scratch (unowned table entries point at it). A model with an MTP layer
has one more buffer of the same layout (`mtp`), addressed by the same block table: the
draft entry points' cache, whose slot ``j`` holds the MTP layer's entry for position ``j``.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import InputError


class KVCache:
    """Latent cache buffers, per-row lengths and (paged) the block allocator."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.rows: int = spec["batch"]
        self.max_seq_len: int = spec["max_seq_len"]
        dtype = getattr(torch, spec["dtype"])
        shape = spec.get("shape") or [self.rows, self.max_seq_len, spec["entry"]]
        self.layers = [torch.zeros(shape, dtype=dtype) for _ in range(spec["layers"])]
        mtp_layers = (spec.get("mtp") or {}).get("layers", 0)
        self.mtp = [torch.zeros(shape, dtype=dtype) for _ in range(mtp_layers)]
        self.paged = spec.get("layout") == "paged"
        self.block_size: int = spec.get("block_size") or self.max_seq_len
        self.lengths = [0] * self.rows
        self.block_table: torch.Tensor | None = None
        if self.paged:
            self.block_table = torch.zeros(self.rows, spec["max_blocks"], dtype=torch.int32)
            self._free = list(range(spec["blocks"] - 1, 0, -1))  # pop() takes the lowest
            self._owned: list[list[int]] = [[] for _ in range(self.rows)]

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache buffers (the MTP layer's included) and the block table."""
        return sum(t.numel() * t.element_size() for t in self.inputs())

    @property
    def free_blocks(self) -> int:
        """Blocks not owned by any row (paged; 0 for a contiguous cache)."""
        return len(self._free) if self.paged else 0

    def inputs(self, entry: str | None = None) -> list[torch.Tensor]:
        """The buffers entry point `entry` takes after its tokens, (hidden,) and positions:
        prefill/decode/verify: (block table,) the layers' caches; draft/draft_prefill:
        (block table,) the MTP cache. None: every buffer the cache holds."""
        table = [self.block_table] if self.block_table is not None else []
        if entry is None:
            return [*table, *self.layers, *self.mtp]
        if entry.startswith("draft"):
            return [*table, *self.mtp]
        return [*table, *self.layers]

    def reserve(self, row: int, length: int) -> None:
        """Makes row `row` able to hold `length` tokens (paged: allocates the blocks)."""
        if length > self.max_seq_len:
            raise InputError(
                f"sequence {row} needs {length} cache slots, more than the compiled "
                f"cache length {self.max_seq_len}"
            )
        if not self.paged:
            return
        owned = self._owned[row]
        need = -(-length // self.block_size)
        while len(owned) < need:
            if not self._free:
                raise InputError("the paged KV cache has no free block left")
            block = self._free.pop()
            self.block_table[row, len(owned)] = block
            owned.append(block)

    def release(self, row: int) -> None:
        """Ends the sequence in row `row`: its length goes to 0 and its blocks back to the pool."""
        self.lengths[row] = 0
        if not self.paged:
            return
        self._free.extend(reversed(self._owned[row]))
        self._owned[row] = []
        self.block_table[row] = 0

    def reset(self) -> None:
        """Ends every sequence (the buffers are kept; their contents become unreachable)."""
        for row in range(self.rows):
            self.release(row)


def cache_bytes(spec: dict[str, Any]) -> int:
    """Bytes a `KVCache` of this manifest spec allocates (without building it)."""
    itemsize = torch.empty((), dtype=getattr(torch, spec["dtype"])).element_size()
    shape = spec.get("shape") or [spec["batch"], spec["max_seq_len"], spec["entry"]]
    total = (spec["layers"] + (spec.get("mtp") or {}).get("layers", 0)) * itemsize
    for dim in shape:
        total *= dim
    if spec.get("layout") == "paged":
        total += spec["batch"] * spec["max_blocks"] * 4
    return total
