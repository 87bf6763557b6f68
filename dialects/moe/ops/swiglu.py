"""`moe.swiglu`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect, expect_float
from ...types import TensorInfo
from ..dialect import MoeOp


class SwigluOp(MoeOp, name="swiglu"):
    """SwiGLU activation of a fused gate/up projection: ``silu(h[..., :I]) * h[..., I:]``.

    ``h`` is ``[..., 2I]`` (gate rows first, then up rows, as produced by a grouped matmul
    over stacked ``[w_gate; w_up]``); the result is ``[..., I]``.
    """

    h: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, h: TensorInfo) -> list[TensorInfo]:
        expect_float(h, "h")
        expect(h.rank >= 1, f"h must have rank >= 1, got {h}")
        width = h.shape[-1]
        expect(
            width is None or width % 2 == 0,
            f"h last dim must be even (gate and up halves), got {width}",
        )
        half = None if width is None else width // 2
        return [TensorInfo((*h.shape[:-1], half), h.dtype)]


def swiglu(h: ir.Value, *, loc: ir.Location | None = None) -> ir.Value:
    """Builds `moe.swiglu`."""
    return build(SwigluOp, h=h, loc=loc).result
