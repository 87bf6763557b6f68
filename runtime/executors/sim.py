"""Run side of the `sim` target: reference numerics plus the timing model.

Every call computes its outputs with the ops' reference semantics (FP8 through
`torch.float8_e4m3fn`, bit for bit) and replays the kernel schedules of the plan on the
device, appending a `CallRecord` to `report`. Artifacts compiled timing-only run without data:
outputs are meta tensors and attention kernels cost the compiled context length.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ArtifactError
from ..interpreter import PlanInterpreter, value_refs
from ..plan import Function, Step
from ..sim.device import Device, DeviceError, parse_device
from ..sim.engine import (
    CallTimeline,
    KernelCost,
    bandwidth_draw,
    kernel_timing,
    simulate_kernel,
    trace_events,
)
from ..sim.records import CallRecord, SimReport
from ..sim.routing import RoutingRecorder
from ..sim.schedule import KernelSchedule
from .base import PlanExecutor

_DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
    "float8_e4m3fn": torch.float8_e4m3fn,
}


class _ContextProbe(PlanInterpreter):
    """Runs steps like the reference and notes the context each attention kernel attends to,
    the rows each expert of a grouped matmul gets, and (when `recorder` is set) the experts
    each dispatch routes to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contexts: dict[int, int] = {}
        self.routing: dict[int, tuple[float, ...]] = {}
        self.recorder: RoutingRecorder | None = None

    def execute(self, step: Step, args: list[Any]) -> tuple[Any, ...]:
        cost = step.cost or {}
        context = cost.get("context")
        if context is not None:
            positions = args[context["arg"]]
            self.contexts[id(step)] = int(positions.max()) + 1 if positions.numel() else 1
        experts = cost.get("experts")
        if experts is not None:
            offsets = args[experts["arg"]].long()
            self.routing[id(step)] = tuple(float(r) for r in (offsets[1:] - offsets[:-1]))
        if self.recorder is not None and step.op == "moe.dispatch":
            self.recorder.add(cost.get("layer"), args[1], int(step.attrs["num_experts"]))
        return super().execute(step, args)


class SimExecutor(PlanExecutor):
    """Executes `sim` artifacts and accounts their cost on the compiled device."""

    name = "sim"
    needs_weights = False
    interpreter_class = _ContextProbe

    def __init__(self, artifact: Any):
        super().__init__(artifact)
        try:
            self.device: Device = parse_device(
                artifact.payload["device.toml"].decode(), "device.toml in the artifact"
            )
        except KeyError:
            raise ArtifactError("sim artifact has no payload/device.toml") from None
        except (DeviceError, UnicodeDecodeError) as err:
            raise ArtifactError(f"sim artifact's device description is invalid: {err}") from None
        self.schedules: dict[int, KernelSchedule] = {}
        for fn in self.plan.functions.values():
            for i, step in enumerate(fn.steps):
                if step.cost is not None:
                    try:
                        schedule = KernelSchedule.from_json(step.cost)
                        _check_fits(schedule, self.device, len(step.args))
                    except (TypeError, ValueError) as err:
                        raise ArtifactError(
                            f"plan function '{fn.name}' step {i} ('{step.op}') has a malformed "
                            f"kernel schedule: {err}"
                        ) from None
                    self.schedules[id(step)] = schedule
        self.timing_only = not artifact.manifest.get("weights", {}).get("present", True)
        self.detail = False  # engine-level trace events (core 0) for every kernel
        self._costs: dict[tuple[int, int, float, bool], KernelCost] = {}
        self._routings: dict[tuple[int, tuple], KernelSchedule] = {}
        self.report = self.new_report()

    def new_report(self) -> SimReport:
        """An empty report for this artifact's device (`report` starts as one)."""
        memory = self.artifact.manifest.get("memory") or {}
        kv = None
        if memory.get("cache_values_per_token"):
            kv = {
                "values_per_token_per_layer": memory["cache_values_per_token"],
                "mha_values_per_token_per_layer": memory.get("mha_values_per_token"),
                "layers": memory.get("layers"),
                "dtype": memory.get("cache_dtype"),
                "batch": memory.get("batch"),
                "context": memory.get("cache_tokens"),
                "bytes": memory.get("cache_bytes"),
            }
        # weights as kept (FP8-quantized ones at their e4m3 + scale size), else as given
        stored = memory.get("weight_bytes")
        weights = (
            sum(stored.values())
            if stored
            else self.artifact.manifest.get("weights", {}).get("bytes")
        )
        return SimReport(
            device=self.device.summary(),
            kv_cache=kv,
            timing_only=self.timing_only,
            weight_bytes=weights,
        )

    def cost_report(self) -> SimReport:
        return self.report

    def run(self, entry: str, inputs: list[torch.Tensor]) -> list[Any]:
        fn = self.plan.functions[entry]
        self.interpreter.contexts = {}
        self.interpreter.routing = {}
        if self.timing_only:
            outputs = [
                torch.empty(s.shape, dtype=_DTYPES.get(s.dtype, torch.float32), device="meta")
                if s is not None
                else None
                for s in fn.output_specs
            ]
        else:
            outputs = self.interpreter.run(fn, inputs)
        self.report.calls.append(self._time(entry, fn, inputs))
        return outputs

    def estimate_cycles(self, entry: str, context: int) -> float:
        """Simulated cycles of one call of `entry` whose attention reads `context` cache slots,
        neither computed nor recorded: what a call the run did not make would cost (the plain
        decode steps a speculative run replaces). Its experts get the rows the latest call of
        `entry` routed, if that was the last call, else the compiled draw."""
        fn = self.plan.functions[entry]
        saved = self.interpreter.contexts
        self.interpreter.contexts = {
            id(step): context for step in fn.steps if (step.cost or {}).get("context") is not None
        }
        try:
            return self._time(entry, fn, []).cycles
        finally:
            self.interpreter.contexts = saved

    def _time(self, entry: str, fn: Function, inputs: list[torch.Tensor]) -> CallRecord:
        start = self.report.cycles
        timeline = CallTimeline(self.device)
        ready: dict[int, float] = dict.fromkeys(fn.inputs, 0.0)
        kernels, events = [], []
        for step in fn.steps:
            at = max((ready.get(v, 0.0) for v in value_refs(step.args)), default=0.0)
            end = at
            schedule = self.schedules.get(id(step))
            if schedule is not None:
                context = self.interpreter.contexts.get(
                    id(step), schedule.context.length if schedule.context else 0
                )
                rows = self.interpreter.routing.get(id(step))
                if rows is not None and schedule.experts is not None:
                    schedule = self._routed(id(step), schedule, rows)
                begin, cost, chosen = self._place(timeline, schedule, context, at)
                timeline.commit(
                    chosen, begin + cost.cycles, bandwidth_draw(self.device, schedule, cost)
                )
                end = begin + cost.cycles
                kernels.append(kernel_timing(schedule.at_context(context), cost, begin, step.loc))
                if self.detail:
                    events += trace_events(cost, schedule, start + begin, step.op)
            for vid in step.results:
                if vid is not None:
                    ready[vid] = end
        first = inputs[0] if inputs else None
        batch = int(first.shape[0]) if first is not None and first.dim() else 1
        tokens = int(first.shape[1]) if first is not None and first.dim() > 1 else 1
        record = CallRecord(entry, batch, tokens, start, kernels, events)
        record.static_pj = (
            self.device.energy.static_w
            * self.device.chips
            * 1e12
            * (self.device.seconds(record.cycles))
        )
        return record

    def _routed(self, step: int, schedule: KernelSchedule, rows: tuple) -> KernelSchedule:
        """`schedule` for the rows per expert a call routed (one schedule per distinct
        routing, so the cost cache still hits)."""
        key = (step, rows)
        routed = self._routings.get(key)
        if routed is None:
            if len(self._routings) > 4096:  # costs are keyed by schedule identity: drop both
                self._routings.clear()
                self._costs.clear()
            routed = self._routings[key] = schedule.with_routing(rows)
        return routed

    def _place(self, timeline: CallTimeline, schedule: KernelSchedule, context: int, at: float):
        """(start, cost, cores) of a kernel whose operands are ready at `at`: on the
        earliest-free cores with the bandwidth the running kernels leave, or, when that ends
        later, once they have released it all."""
        begin, chosen = timeline.start(at, schedule.chips, schedule.cores)
        share = timeline.free_share(begin)
        cost = self._cost(schedule, context, share) if share > 0 else None
        if share < 1.0:
            later = timeline.released(begin)
            alone = self._cost(schedule, context, timeline.free_share(later))
            if cost is None or later + alone.cycles < begin + cost.cycles:
                begin, cost = later, alone
        return begin, cost, chosen

    def _cost(self, schedule: KernelSchedule, context: int, share: float) -> KernelCost:
        key = (id(schedule), context, share, self.detail)
        cost = self._costs.get(key)
        if cost is None:
            cost = simulate_kernel(schedule.at_context(context), self.device, self.detail, share)
            self._costs[key] = cost
        return cost


def _check_fits(s: KernelSchedule, device: Device, n_args: int) -> None:
    """Raises ValueError when `s` asks for more than `device` has."""
    if s.chips > device.chips or s.cores > device.cores:
        raise ValueError(
            f"kernel schedule uses {s.chips} chip(s) x {s.cores} cores; the device has "
            f"{device.chips} x {device.cores}"
        )
    if s.matmul is not None and not device.core.tensor.supports(s.matmul.dtype):
        raise ValueError(f"kernel schedule needs a {s.matmul.dtype} tensor engine")
    if s.context is not None and s.context.arg >= n_args:
        raise ValueError(f"kernel schedule context 'arg' {s.context.arg} is not an argument")
