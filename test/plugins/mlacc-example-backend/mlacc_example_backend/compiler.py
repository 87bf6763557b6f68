"""Compile side of `example-cpu`: plan-based, no FP8."""

from __future__ import annotations

import json

from mlacc.backends import Backend, CompileRequest, Payload
from mlacc.backends.plan_builder import build_plan
from mlacc.backends.reference import ReferenceBackend


class ExampleBackend(Backend):
    """A pretend CPU without FP8 support: every op the reference runs, except `fp8.*`."""

    name = "example-cpu"
    executor = "example-cpu"
    description = "example out-of-tree plug-in (NumPy RMSNorm kernel, no FP8)"

    def supports(self, op_name: str) -> bool:
        return not op_name.startswith("fp8.") and ReferenceBackend().supports(op_name)

    def compile(self, module, request: CompileRequest) -> Payload:
        plan, constants = build_plan(module)
        files = {"plan.json": json.dumps(plan.to_json()).encode()}
        return Payload(files=files, weights=constants, manifest={"kernels": ["numpy:rms_norm"]})
