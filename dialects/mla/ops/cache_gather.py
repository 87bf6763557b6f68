"""`mla.cache_gather`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build
from ...types import TensorInfo
from ..cache import cache_slots
from ..dialect import MlaOp


class CacheGatherOp(MlaOp, name="cache_gather"):
    """Reads every sequence's slots of a paged latent cache into a contiguous tensor.

    ``cache`` is a pool ``[N, block_size, E]`` and ``block_table`` ``[B, M]``; the result is
    ``[B, M * block_size, E]`` with ``out[b, j] = cache[block_table[b, j // block_size],
    j % block_size]``. The un-absorbed (prefill) attention over a paged cache reads its keys
    through it: the up-projection that follows costs far more than the gather.
    """

    cache: ext.Operand[AnyTensor]
    block_table: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, cache: TensorInfo, block_table: TensorInfo) -> list[TensorInfo]:
        batch, slots = cache_slots(cache, block_table, None, "cache")
        return [TensorInfo((batch, slots, cache.shape[2]), cache.dtype)]


def cache_gather(
    cache: ir.Value, block_table: ir.Value, *, loc: ir.Location | None = None
) -> ir.Value:
    """Builds `mla.cache_gather`."""
    return build(CacheGatherOp, cache=cache, block_table=block_table, loc=loc).result
