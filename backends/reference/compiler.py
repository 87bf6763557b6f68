"""Compile side of the `reference` target: the module becomes a plan, nothing else changes."""

from __future__ import annotations

import json

from ...dialects._mlir import ir
from ...runtime.errors import InputError
from ..api import Backend, CompileRequest, Payload
from ..plan_builder import build_plan, runs_on_reference_kernels


class ReferenceBackend(Backend):
    """The golden model: every mla/moe/fp8 op through its PyTorch reference semantics and every
    torch-dialect op through `torch.ops.aten`."""

    name = "reference"
    executor = "reference"
    description = "golden interpreter: reference semantics of every op, in PyTorch"

    def supports(self, op_name: str) -> bool:
        return runs_on_reference_kernels(op_name)

    def compile(self, module: ir.Module, request: CompileRequest) -> Payload:
        if request.options:
            raise InputError(
                f"target 'reference' takes no options (got {', '.join(sorted(request.options))})"
            )
        plan, constants = build_plan(module)
        return Payload(files={"plan.json": json.dumps(plan.to_json()).encode()}, weights=constants)
