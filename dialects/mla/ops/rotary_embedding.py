"""`mla.rotary_embedding`."""

from typing import Any

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dim, expect_dtype, expect_float, expect_rank
from ...types import INT_DTYPES, TensorInfo
from ..dialect import MlaOp
from ..rope import check_rope


class RotaryEmbeddingOp(MlaOp, name="rotary_embedding"):
    """Rotary position embedding of the decoupled RoPE part of queries or keys.

    ``x`` is ``[B, S, H, d]`` (per-head query part) or ``[B, S, d]`` (the key part shared by
    all heads); ``positions`` is ``[B, S]``. Each pair of channels is rotated by
    ``positions * inv_freq``, with the pairing, base and YaRN correction taken from the
    ``rope`` attribute (see `mlacc.dialects.mla.rope`). The result has x's type.
    """

    x: ext.Operand[AnyTensor]
    positions: ext.Operand[AnyTensor]
    rope: ir.DictAttr
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, x: TensorInfo, positions: TensorInfo, rope: dict[str, Any]) -> list[TensorInfo]:
        expect_float(x, "x")
        expect_rank(x, "x", 3, 4)
        expect_rank(positions, "positions", 2)
        expect_dtype(positions, "positions", INT_DTYPES)
        expect_dim(positions.shape[0], x.shape[0], "positions batch size")
        expect_dim(positions.shape[1], x.shape[1], "positions sequence length")
        check_rope(rope, x.shape[-1])
        return [x]


def rotary_embedding(
    x: ir.Value, positions: ir.Value, *, rope: dict[str, Any], loc: ir.Location | None = None
) -> ir.Value:
    """Builds `mla.rotary_embedding`."""
    return build(RotaryEmbeddingOp, x=x, positions=positions, rope=rope, loc=loc).result
