"""Compile side of the `sim` target."""

from __future__ import annotations

import json

from mlacc.backends import Backend, CompileRequest, Payload
from mlacc.backends.plan_builder import PlanBuilder, build_plan, runs_on_reference_kernels
from mlacc.dialects._mlir import ir
from mlacc.passes.registry import PassError
from mlacc.runtime.errors import CompileError, InputError
from mlacc.runtime.plan import Step
from mlacc.runtime.sim.device import DeviceError
from mlacc.runtime.sim.routing import parse_routing

from .lowering import (
    DEFAULT_DEVICE,
    AccelLowerOptions,
    absorb_roofline,
    lower_module,
    resolve_device,
    schedule_of,
)
from .workloads import NO_COST_MODEL

OPTIONS = ("device", "buffers", "fp8_fallback", "routing")


class SimPlanBuilder(PlanBuilder):
    """The plan of an ``accel`` program: each kernel's schedule becomes the cost of the step
    that computes its op."""

    def step(self, op: ir.OpView) -> Step | None:
        if op.operation.name != "accel.kernel":
            return super().step(op)
        target = self.producers.get(op.operands[0])
        if target is None:
            raise CompileError(f"accel.kernel for '{op.attributes['op']}' has no computing op")
        target.cost = schedule_of(op).to_json()
        return None


class SimBackend(Backend):
    """A simulated accelerator: reference numerics, per-engine timing, energy and traces."""

    name = "sim"
    executor = "sim"
    description = "simulated accelerator: device TOML, tiled accel program, cycles/bytes/energy"

    def supports(self, op_name: str) -> bool:
        if op_name in NO_COST_MODEL:  # captured whole-layer ops: the default pipeline splits them
            return False
        return op_name.startswith("accel.") or runs_on_reference_kernels(op_name)

    def pass_options(self, options: dict) -> dict[str, dict]:
        """The absorption cost model's roofline: the device's achievable compute and memory
        rates (``device`` option, or the default preset)."""
        try:
            device = resolve_device(options.get("device", DEFAULT_DEVICE))
        except DeviceError:
            return {}  # compile() reports the bad device
        return {"mla-absorb-weights": absorb_roofline(device)}

    def compile(self, module: ir.Module, request: CompileRequest) -> Payload:
        unknown = sorted(set(request.options) - set(OPTIONS))
        if unknown:
            raise InputError(
                f"target 'sim' has no option '{unknown[0]}' (options: {', '.join(OPTIONS)})"
            )
        try:
            given = dict(request.options)
            device = resolve_device(given.pop("device", DEFAULT_DEVICE))
            options = AccelLowerOptions(**given)
            routing = parse_routing(options.routing)
        except (ValueError, DeviceError) as err:
            if isinstance(err, DeviceError):
                raise
            raise InputError(str(err).replace("option '", "target 'sim' option '", 1)) from None
        try:
            kernels = lower_module(
                module.operation,
                device,
                buffers=options.buffers,
                fp8_fallback=options.fp8_fallback,
                routing=routing,
            )
        except PassError as err:
            err_ = CompileError(str(err))
            err_.op = err.op  # the compiler names the op's source location
            raise err_ from None
        if request.progress is not None:
            counts = ", ".join(f"{name} {n}" for name, n in kernels.items())
            request.progress(f"lowered for {device.name}: kernels per entry point: {counts}")
        plan, constants = build_plan(module, SimPlanBuilder())
        return Payload(
            files={
                "plan.json": json.dumps(plan.to_json()).encode(),
                "device.toml": device.source.encode(),
            },
            weights=constants,
            manifest={"device": device.summary()},
        )
