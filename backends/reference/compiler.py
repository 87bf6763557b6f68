"""Compile side of the `reference` target: the module becomes a plan, nothing else changes."""

from __future__ import annotations

import json

from ...dialects._mlir import ir
from ...runtime.semantics import SEMANTICS
from ...runtime.torch_ops import is_torch_op
from ..api import Backend, CompileRequest, Payload
from ..plan_builder import build_plan

# torch-dialect ops the plan builder folds into literals instead of executing.
FOLDED_TORCH_OPS = frozenset(
    {
        "torch.constant.int",
        "torch.constant.float",
        "torch.constant.bool",
        "torch.constant.str",
        "torch.constant.none",
        "torch.constant.number",
        "torch.constant.device",
        "torch.prim.ListConstruct",
        "torch.vtensor.literal",
    }
)


class ReferenceBackend(Backend):
    """The golden model: every mla/moe/fp8 op through its PyTorch reference semantics and every
    torch-dialect op through `torch.ops.aten`."""

    name = "reference"
    executor = "reference"
    description = "golden interpreter: reference semantics of every op, in PyTorch"

    def supports(self, op_name: str) -> bool:
        return (
            op_name in SEMANTICS
            or op_name == "mlacc.weight"
            or op_name in FOLDED_TORCH_OPS
            or is_torch_op(op_name)
        )

    def compile(self, module: ir.Module, request: CompileRequest) -> Payload:
        plan, constants = build_plan(module)
        return Payload(files={"plan.json": json.dumps(plan.to_json()).encode()}, weights=constants)
