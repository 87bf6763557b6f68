"""`mla.rope_tables`."""

from typing import Any

from ..._mlir import ext, ir
from ...base import AnyTensor, VerificationError, positive, python_to_attr
from ...types import TensorInfo, like, vtensor_type
from ..dialect import MlaOp
from ..rope import check_rope


class RopeTablesOp(MlaOp, name="rope_tables"):
    """Precomputed rotary-embedding tables: the constants of a fused RoPE (`--mla-fuse-rope`).

    ``cos[p, i]`` and ``sin[p, i]`` (fp32, ``[max_positions, dim / 2]``) are the cosine and sine
    of ``p * inv_freq[i]`` for positions ``p = 0 .. max_positions - 1``, with the frequencies
    (base, YaRN correction) and the ``cos_sin_scale`` multiplier of the ``rope`` attribute (see
    `mlacc.dialects.mla.rope`); ``dim`` is the rotary dimension. The tables do not depend on
    the pairing layout: the consumer (`mla.latent_attention`, `mla.decoupled_attention`,
    `mla.cache_update`) names it in its ``rope_layout`` attribute. Like every graph op it is
    pure, so identical tables merge into one under CSE.
    """

    rope: ir.DictAttr
    dim: ir.IntegerAttr
    max_positions: ir.IntegerAttr
    cos: ext.Result[AnyTensor]
    sin: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, rope: dict[str, Any], dim: int, max_positions: int) -> list[TensorInfo]:
        positive(dim, "dim")
        positive(max_positions, "max_positions")
        if dim % 2:
            raise VerificationError(f"attribute 'dim' (rotary dimension) must be even, got {dim}")
        check_rope(rope, dim)
        table = TensorInfo((max_positions, dim // 2), "float32")
        return [table, table]


def rope_tables(
    *,
    rope: dict[str, Any],
    dim: int,
    max_positions: int,
    kind: ir.Type | None = None,
    loc: ir.Location | None = None,
) -> tuple[ir.Value, ir.Value]:
    """Builds `mla.rope_tables`; `kind` is a tensor type whose kind (vtensor or builtin tensor)
    the tables take (vtensor when None). Returns ``(cos, sin)``."""
    (table, _) = RopeTablesOp.infer(rope=rope, dim=dim, max_positions=max_positions)
    t = vtensor_type(table.shape, table.dtype) if kind is None else like(kind, table)
    op = RopeTablesOp(
        rope=ir.Attribute(python_to_attr(rope)),
        dim=ir.Attribute(python_to_attr(dim)),
        max_positions=ir.Attribute(python_to_attr(max_positions)),
        cos=t,
        sin=t,
        loc=loc,
    )
    return op.cos, op.sin
