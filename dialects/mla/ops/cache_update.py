"""`mla.cache_update`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect, expect_dim, expect_dtype, expect_rank
from ...types import INT_DTYPES, TensorInfo
from ..cache import cache_slots
from ..dialect import MlaOp
from ..rope import check_rope_tables


class CacheUpdateOp(MlaOp, name="cache_update"):
    """Writes new per-token cache entries at their positions (value semantics).

    ``cache`` is ``[B, T, E]``, ``entries`` ``[B, S, E]``, ``positions`` ``[B, S]``; the result
    is ``cache`` with ``result[b, positions[b,i]] = entries[b,i]``. For MLA the entry is the
    latent ``[c_kv; k_pe]`` (``E = kv_lora_rank + qk_rope_head_dim``). Pure in the IR: ``cache``
    is read, never written, and an unused result may be dropped; writing the runtime's buffer in
    place is the targets' decision for donated inputs, after the IR (docs/execution-contract.md).

    Paged layout: with ``block_table`` ``[B, M]``, ``cache`` is a pool ``[N, block_size, E]``
    and slot ``j`` of sequence ``b`` is ``cache[block_table[b, j // block_size], j %
    block_size]`` (docs/execution-contract.md).

    Fused rotary embedding (`--mla-fuse-rope`): with ``rope_cos``/``rope_sin`` (fp32
    ``[P, dr/2]`` tables from `mla.rope_tables`) and ``rope_layout`` ("interleaved" or
    "rotate_half"), the last ``dr`` channels of each entry (``k_pe``, un-rotated) are rotated by
    the tables' row ``positions[b,i]`` before the write; ``rope_layout = "none"`` (the default)
    takes no tables and writes the entries as they are.
    """

    cache: ext.Operand[AnyTensor]
    entries: ext.Operand[AnyTensor]
    positions: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]
    rope_cos: ext.Operand[AnyTensor] | None = None
    rope_sin: ext.Operand[AnyTensor] | None = None
    block_table: ext.Operand[AnyTensor] | None = None
    rope_layout: ir.StringAttr = ext.attribute(default_factory=lambda: ir.StringAttr.get("none"))

    @staticmethod
    def infer(
        *,
        cache: TensorInfo,
        entries: TensorInfo,
        positions: TensorInfo,
        rope_cos: TensorInfo | None = None,
        rope_sin: TensorInfo | None = None,
        block_table: TensorInfo | None = None,
        rope_layout: str = "none",
    ) -> list[TensorInfo]:
        batch, _ = cache_slots(cache, block_table, None, "cache")
        expect_rank(entries, "entries", 3)
        expect_dtype(entries, "entries", {cache.dtype})
        expect_dim(entries.shape[0], batch, "entries batch size")
        expect_dim(entries.shape[2], cache.shape[2], "entries entry size")
        expect_rank(positions, "positions", 2)
        expect_dtype(positions, "positions", INT_DTYPES)
        expect_dim(positions.shape[0], batch, "positions batch size")
        expect_dim(positions.shape[1], entries.shape[1], "positions length")
        check_rope_tables(rope_cos, rope_sin, rope_layout, None)
        if rope_cos is not None:
            expect(
                rope_cos.shape[1] is None
                or entries.shape[2] is None
                or 2 * rope_cos.shape[1] <= entries.shape[2],
                f"rope tables rotate {rope_cos.shape[1]} pairs, more than the entry holds",
            )
        return [cache]


def cache_update(
    cache: ir.Value,
    entries: ir.Value,
    positions: ir.Value,
    *,
    rope_cos: ir.Value | None = None,
    rope_sin: ir.Value | None = None,
    block_table: ir.Value | None = None,
    rope_layout: str = "none",
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `mla.cache_update` (with tables: rotating the entries' last dr channels)."""
    return build(
        CacheUpdateOp,
        cache=cache,
        entries=entries,
        positions=positions,
        rope_cos=rope_cos,
        rope_sin=rope_sin,
        block_table=block_table,
        rope_layout=rope_layout,
        loc=loc,
    ).result
