"""`moe.experts`."""

from collections.abc import Sequence

from ..._mlir import ext, ir
from ...base import (
    AnyTensor,
    build,
    expect,
    expect_float,
    expect_matrix,
    expect_rank,
    positive,
)
from ...types import TensorInfo
from ..dialect import MoeOp
from ..routing import expect_routing


class ExpertsOp(MoeOp, name="experts"):
    """Routed experts in per-expert form: ``out[n] = Σ_k weights[n,k] · FFN_{indices[n,k]}(x[n])``.

    Each expert ``e`` is a SwiGLU FFN with its own ``w_gate[e]``, ``w_up[e]`` (``[I, D]``) and
    ``w_down[e]`` (``[D, I]``), given as ``num_experts`` separate operands each. ``x`` is
    ``[N, D]``, ``weights``/``indices`` ``[N, K]`` from `moe.router`. `--moe-group-experts`
    turns this form into dispatch + grouped matmuls + combine.
    """

    x: ext.Operand[AnyTensor]
    weights: ext.Operand[AnyTensor]
    indices: ext.Operand[AnyTensor]
    w_gate: Sequence[ext.Operand[AnyTensor]]
    w_up: Sequence[ext.Operand[AnyTensor]]
    w_down: Sequence[ext.Operand[AnyTensor]]
    num_experts: ir.IntegerAttr
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *,
        x: TensorInfo,
        weights: TensorInfo,
        indices: TensorInfo,
        w_gate: list[TensorInfo],
        w_up: list[TensorInfo],
        w_down: list[TensorInfo],
        num_experts: int,
    ) -> list[TensorInfo]:
        positive(num_experts, "num_experts")
        for name, ws in (("w_gate", w_gate), ("w_up", w_up), ("w_down", w_down)):
            expect(
                len(ws) == num_experts,
                f"{len(ws)} '{name}' operands for num_experts = {num_experts}",
            )
        expect_float(x, "x")
        expect_rank(x, "x", 2)
        n, d = x.shape
        expect_routing(weights, indices, n)
        inter = w_gate[0].shape[0]
        for e in range(num_experts):
            expect_matrix(w_gate[e], f"w_gate[{e}]", inter, d)
            expect_matrix(w_up[e], f"w_up[{e}]", inter, d)
            expect_matrix(w_down[e], f"w_down[{e}]", d, inter)
        return [x]


def experts(
    x: ir.Value,
    weights: ir.Value,
    indices: ir.Value,
    w_gate: list[ir.Value],
    w_up: list[ir.Value],
    w_down: list[ir.Value],
    *,
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `moe.experts` from per-expert weight lists."""
    return build(
        ExpertsOp,
        x=x,
        weights=weights,
        indices=indices,
        w_gate=w_gate,
        w_up=w_up,
        w_down=w_down,
        num_experts=len(w_gate),
        loc=loc,
    ).result
