"""`mla.cache_update`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dim, expect_dtype, expect_float, expect_rank
from ...types import INT_DTYPES, TensorInfo
from ..dialect import MlaOp


class CacheUpdateOp(MlaOp, name="cache_update"):
    """Writes new per-token cache entries at their positions (value semantics).

    ``cache`` is ``[B, T, E]``, ``entries`` ``[B, S, E]``, ``positions`` ``[B, S]``; the result
    is ``cache`` with ``result[b, positions[b,i]] = entries[b,i]``. For MLA the entry is the
    latent ``[c_kv; k_pe]`` (``E = kv_lora_rank + qk_rope_head_dim``); the runtime updates its
    buffer in place.
    """

    cache: ext.Operand[AnyTensor]
    entries: ext.Operand[AnyTensor]
    positions: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, cache: TensorInfo, entries: TensorInfo, positions: TensorInfo) -> list[TensorInfo]:
        expect_float(cache, "cache")
        expect_rank(cache, "cache", 3)
        expect_rank(entries, "entries", 3)
        expect_dtype(entries, "entries", {cache.dtype})
        expect_dim(entries.shape[0], cache.shape[0], "entries batch size")
        expect_dim(entries.shape[2], cache.shape[2], "entries entry size")
        expect_rank(positions, "positions", 2)
        expect_dtype(positions, "positions", INT_DTYPES)
        expect_dim(positions.shape[0], cache.shape[0], "positions batch size")
        expect_dim(positions.shape[1], entries.shape[1], "positions length")
        return [cache]


def cache_update(
    cache: ir.Value, entries: ir.Value, positions: ir.Value, *, loc: ir.Location | None = None
) -> ir.Value:
    """Builds `mla.cache_update`."""
    return build(CacheUpdateOp, cache=cache, entries=entries, positions=positions, loc=loc).result
