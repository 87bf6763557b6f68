"""`moe.mlp`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect, expect_float, expect_matrix
from ...types import TensorInfo
from ..dialect import MoeOp


class MlpOp(MoeOp, name="mlp"):
    """SwiGLU feed-forward: ``w_down · (silu(w_gate · x) * (w_up · x))``.

    The dense MLP of the first layers and DeepSeekMoE's always-on shared experts (whose
    weights are the shared experts concatenated along the intermediate dim). ``x`` is
    ``[..., D]``; ``w_gate`` and ``w_up`` are ``[I, D]``, ``w_down`` ``[D, I]``.
    """

    x: ext.Operand[AnyTensor]
    w_gate: ext.Operand[AnyTensor]
    w_up: ext.Operand[AnyTensor]
    w_down: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *, x: TensorInfo, w_gate: TensorInfo, w_up: TensorInfo, w_down: TensorInfo
    ) -> list[TensorInfo]:
        expect_float(x, "x")
        expect(x.rank >= 1, f"x must have rank >= 1, got {x}")
        d = x.shape[-1]
        expect_matrix(w_gate, "w_gate", None, d)
        inter = w_gate.shape[0]
        expect_matrix(w_up, "w_up", inter, d)
        expect_matrix(w_down, "w_down", d, inter)
        return [x]


def mlp(
    x: ir.Value,
    w_gate: ir.Value,
    w_up: ir.Value,
    w_down: ir.Value,
    *,
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `moe.mlp`."""
    return build(MlpOp, x=x, w_gate=w_gate, w_up=w_up, w_down=w_down, loc=loc).result
