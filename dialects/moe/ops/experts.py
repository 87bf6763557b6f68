"""`moe.experts`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect, expect_dim, expect_float, expect_rank
from ...types import TensorInfo
from ..dialect import MoeOp
from ..routing import expect_routing


class ExpertsOp(MoeOp, name="experts"):
    """Routed experts in per-expert form: ``out[n] = Σ_k weights[n,k] · FFN_{indices[n,k]}(x[n])``.

    Expert ``e`` is a SwiGLU FFN ``w_down[e] · (silu(w_gate[e] · x) * (w_up[e] · x))``; the
    experts' weights come stacked: ``w_gate`` and ``w_up`` ``[E, I, D]``, ``w_down``
    ``[E, D, I]``. ``x`` is ``[N, D]``, ``weights``/``indices`` ``[N, K]`` from `moe.router`.
    Each expert computes on its own tokens (the form capture produces); `--moe-group-experts`
    turns it into dispatch + grouped matmuls + combine.
    """

    x: ext.Operand[AnyTensor]
    weights: ext.Operand[AnyTensor]
    indices: ext.Operand[AnyTensor]
    w_gate: ext.Operand[AnyTensor]
    w_up: ext.Operand[AnyTensor]
    w_down: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *,
        x: TensorInfo,
        weights: TensorInfo,
        indices: TensorInfo,
        w_gate: TensorInfo,
        w_up: TensorInfo,
        w_down: TensorInfo,
    ) -> list[TensorInfo]:
        expect_float(x, "x")
        expect_rank(x, "x", 2)
        n, d = x.shape
        expect_routing(weights, indices, n)
        for name, t in (("w_gate", w_gate), ("w_up", w_up), ("w_down", w_down)):
            expect_float(t, name)
            expect_rank(t, name, 3)
        experts, inter, _ = w_gate.shape
        expect(experts is None or experts > 0, "w_gate must hold at least one expert")
        expect_dim(w_gate.shape[2], d, "w_gate last dim (model dim)")
        expect_dim(w_up.shape[0], experts, "w_up experts")
        expect_dim(w_up.shape[1], inter, "w_up rows (intermediate dim)")
        expect_dim(w_up.shape[2], d, "w_up last dim (model dim)")
        expect_dim(w_down.shape[0], experts, "w_down experts")
        expect_dim(w_down.shape[1], d, "w_down rows (model dim)")
        expect_dim(w_down.shape[2], inter, "w_down last dim (intermediate dim)")
        return [x]


def experts(
    x: ir.Value,
    weights: ir.Value,
    indices: ir.Value,
    w_gate: ir.Value,
    w_up: ir.Value,
    w_down: ir.Value,
    *,
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `moe.experts` from stacked expert weights."""
    return build(
        ExpertsOp,
        x=x,
        weights=weights,
        indices=indices,
        w_gate=w_gate,
        w_up=w_up,
        w_down=w_down,
        loc=loc,
    ).result
