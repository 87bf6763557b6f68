"""`mla.rms_norm`."""

from ..._mlir import ext, ir
from ...base import (
    AnyTensor,
    build,
    expect,
    expect_dim,
    expect_float,
    expect_rank,
    expect_static,
)
from ...types import TensorInfo
from ..dialect import MlaOp


class RmsNormOp(MlaOp, name="rms_norm"):
    """Root-mean-square normalization over the last dimension.

    ``out = x / sqrt(mean(x^2, -1) + eps) * weight``, computed in fp32 and returned in x's
    element type. Used before attention and MLP blocks, and on the query and KV latents
    inside MLA (``q_norm``, ``kv_norm``).
    """

    x: ext.Operand[AnyTensor]
    weight: ext.Operand[AnyTensor]
    eps: ir.FloatAttr
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, x: TensorInfo, weight: TensorInfo, eps: float) -> list[TensorInfo]:
        expect_float(x, "x")
        expect_float(weight, "weight")
        expect_rank(weight, "weight", 1)
        expect_static(weight, "weight")
        expect(x.rank >= 1, f"x must have rank >= 1, got {x}")
        expect_dim(weight.shape[0], x.shape[-1], "weight size")
        expect(eps > 0, f"attribute 'eps' must be positive, got {eps}")
        return [x]


def rms_norm(
    x: ir.Value, weight: ir.Value, *, eps: float, loc: ir.Location | None = None
) -> ir.Value:
    """Builds `mla.rms_norm`."""
    return build(RmsNormOp, x=x, weight=weight, eps=eps, loc=loc).result
