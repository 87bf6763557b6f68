"""`--accel-lower`: every graph op gets an ``accel.kernel`` tiled for one device.

The kernel follows the op and holds its per-tile schedule (see `accel.ops`); free ops (views,
constants, weights and what is computed from weights alone) get none.
The IR is the source of truth: `schedule_of` reads a kernel back into the `KernelSchedule`
the simulator replays, so a hand-written ``accel`` program simulates like a lowered one.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from mlacc.dialects._mlir import func, ir
from mlacc.dialects.base import attr_to_python, python_to_attr
from mlacc.dialects.types import tensor_info
from mlacc.passes.registry import PassError, option, register_pass
from mlacc.runtime.errors import InputError
from mlacc.runtime.sim.device import DTYPES, Device, DeviceError, load_device
from mlacc.runtime.sim.routing import RoutingSpec, parse_routing, sample_rows
from mlacc.runtime.sim.schedule import (
    ContextStream,
    ExpertStream,
    KernelSchedule,
    Matmul,
    shallow,
)

from .accel import ACCEL, DmaOp, KernelOp, LinkOp, MatmulOp, VectorOp
from .tiling import (
    AttentionWork,
    MatmulWork,
    Routing,
    TilingError,
    compute_dtype,
    tile_attention,
    tile_matmul,
    tile_stream,
)
from .workloads import VIEW_OPS, layer_of_key, nbytes, workload

PRESETS = Path(__file__).parent / "devices"
FALLBACK_DTYPES = tuple(d for d in DTYPES if d != "fp8")
DEFAULT_DEVICE = "datacenter-npu"

FREE_OPS = VIEW_OPS | {
    "mlacc.weight",
    "torch.vtensor.literal",
    "torch.prim.ListConstruct",
    "func.return",
    "accel.kernel",
}


# Earlier names of presets, still accepted.
ALIASES = {"h200": "h200-like"}


def presets() -> list[str]:
    """Names of the device presets shipped with the `sim` target."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def resolve_device(spec: str | Device) -> Device:
    """A preset name (``h100-like``), a TOML file path or a `Device` (`derive_device`) ->
    `Device` (DeviceError if none of these)."""
    if isinstance(spec, Device):
        return spec
    spec = ALIASES.get(str(spec), str(spec))
    if spec in presets():
        return load_device(PRESETS / f"{spec}.toml")
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return load_device(path)
    raise DeviceError(f"unknown device '{spec}' (presets: {', '.join(presets())}; or a .toml file)")


def absorb_roofline(device: Device) -> dict[str, object]:
    """`--mla-absorb-weights` options for `device`: its achievable bf16 (else widest) tensor
    rate and HBM bandwidth, all chips together, and its name for the decision's reason."""
    macs = device.core.tensor.macs_per_cycle
    dtype = "bf16" if "bf16" in macs else max(macs, key=macs.get)
    peak = device.peak_flops(dtype) * device.core.tensor.efficiency
    return {
        "peak-tflops": round(peak / 1e12, 4),
        "bandwidth-gbs": round(device.hbm.achievable * device.chips / 1e9, 4),
        "device": device.name,
    }


@dataclass(frozen=True)
class AccelLowerOptions:
    """Options of `--accel-lower`."""

    device: str = option(DEFAULT_DEVICE, "device preset name or device TOML file")
    buffers: int = option(
        2, "scratchpad buffers per streamed operand (2 = double buffering)", min=1, max=16
    )
    fp8_fallback: str = option("", "on a device without FP8, run FP8 matmuls at this dtype's rate")
    routing: str = option(
        "uniform", "expert routing to cost: uniform, zipf:S, or a --record-routing histogram file"
    )

    def __post_init__(self) -> None:
        if not isinstance(self.buffers, int) or isinstance(self.buffers, bool) or self.buffers < 1:
            raise ValueError(f"option 'buffers' must be an integer >= 1, got {self.buffers!r}")
        if self.fp8_fallback not in ("", *FALLBACK_DTYPES):
            raise ValueError(
                f"option 'fp8-fallback' must be one of {', '.join(FALLBACK_DTYPES)} (or empty), "
                f"got {self.fp8_fallback!r}"
            )


def run(module: ir.Operation, options: AccelLowerOptions) -> None:
    """Lowers every function of `module` for the device (see the module docstring)."""
    try:
        device = resolve_device(options.device)
    except DeviceError as err:
        raise PassError(str(err)) from None
    try:
        routing = parse_routing(options.routing)
    except InputError as err:
        raise PassError(str(err)) from None
    lower_module(
        module,
        device,
        buffers=options.buffers,
        fp8_fallback=options.fp8_fallback,
        routing=routing,
    )


def lower_module(
    module: ir.Operation,
    device: Device,
    *,
    buffers: int = 2,
    fp8_fallback: str = "",
    routing: RoutingSpec | None = None,
) -> dict[str, int]:
    """Schedules each non-free op of each function with an ``accel.kernel`` for `device`;
    returns the number of kernels each function has now."""
    if not module.context.is_dialect_loaded("accel"):
        ACCEL.load()
    attrs = module.operation.attributes
    if "accel.device" in attrs and ir.StringAttr(attrs["accel.device"]).value != device.name:
        lowered = ir.StringAttr(attrs["accel.device"]).value
        raise PassError(
            f"the module is already lowered for device '{lowered}'; lower the graph before "
            f"--accel-lower for '{device.name}'"
        )
    attrs["accel.device"] = ir.StringAttr.get(device.name)
    kernels = {}
    for op in module.regions[0].blocks[0].operations:
        if isinstance(op, func.FuncOp) and op.regions[0].blocks:
            name = ir.StringAttr(op.attributes["sym_name"]).value
            lowering = _Lowering(device, buffers, fp8_fallback, routing or RoutingSpec())
            kernels[name] = lowering.function(op)
    return kernels


class _Lowering:
    def __init__(
        self, device: Device, buffers: int, fp8_fallback: str, routing: RoutingSpec
    ) -> None:
        self.device = device
        self.routing = routing
        self.buffers = buffers
        self.fp8_fallback = fp8_fallback
        self.weight_only: set[ir.Value] = set()  # from weights and constants alone
        self.weights: set[ir.Value] = set()  # ... and from at least one weight
        self.layer: dict[ir.Value, int] = {}
        self.alias: dict[ir.Value, ir.Value] = {}  # view result -> the value it views
        self.recent: dict[ir.Value, int] = {}  # kernel outputs still in the L2 -> bytes
        self.order: deque[ir.Value] = deque()  # ... oldest first
        self.held = 0  # their bytes

    def function(self, f: func.FuncOp) -> int:
        ops = list(f.regions[0].blocks[0].operations)
        scheduled = {k.operands[0].owner for k in ops if k.operation.name == "accel.kernel"}
        count = len(scheduled)
        for op in ops:
            layer = self._layer(op)
            if self._is_free(op) or op.operation in scheduled:
                if op.operation.name in VIEW_OPS and op.operands:
                    self.alias[op.results[0]] = self._root(op.operands[0])
                continue
            try:
                schedule = self._l2_resident(op, self._schedule(op, layer))
            except TilingError as err:
                raise PassError(
                    f"cannot lower '{op.operation.name}' for device '{self.device.name}': {err}",
                    op=op,
                ) from None
            annotate(op, schedule)
            count += 1
        return count

    def _root(self, value: ir.Value) -> ir.Value:
        return self.alias.get(value, value)

    def _l2_resident(self, op: ir.OpView, s: KernelSchedule) -> KernelSchedule:
        """`s` less the HBM reads of operands that earlier kernels wrote and the chip's L2
        still holds: the last kernel outputs written, back to half the L2's capacity (the
        other half for the tiles streaming through). Notes the saving."""
        if self.device.l2 is None:
            return s
        seen, resident = set(), 0
        for value in op.operands:
            root = self._root(value)
            if root in self.recent and root not in seen:
                seen.add(root)
                resident += self.recent[root]
        written = sum(_nbytes(r) for r in op.results)
        self.recent[op.results[0]] = written
        self.order.append(op.results[0])
        self.held += written
        while self.held > self.device.l2.capacity_bytes / 2 and self.order:
            self.held -= self.recent.pop(self.order.popleft())
        saved = min(resident, s.hbm_bytes - written)
        if saved <= 0:
            return s
        note = f"{saved / 1e6:.3g} MB of operands read from the L2 (written by earlier kernels)"
        return dataclasses.replace(s, hbm_bytes=s.hbm_bytes - saved, notes=(*s.notes, note))

    def _layer(self, op: ir.OpView) -> int | None:
        """The layer of the weights `op` reads (None: weights outside the layers, such as the
        LM head); an op without weights belongs to its operands' latest layer."""
        if op.operation.name == "mlacc.weight":
            layer = layer_of_key(ir.StringAttr(op.attributes["key"]).value)
        elif any(v in self.weights for v in op.operands):
            found = [self.layer[v] for v in op.operands if v in self.weights and v in self.layer]
            layer = max(found) if found else None
        else:
            found = [self.layer[v] for v in op.operands if v in self.layer]
            layer = max(found) if found else None
        if layer is not None:
            for r in op.results:
                self.layer[r] = layer
        return layer

    def _is_free(self, op: ir.OpView) -> bool:
        name = op.operation.name
        derived = all(v in self.weight_only for v in op.operands)
        if (
            name == "mlacc.weight"
            or name.startswith("torch.constant.")
            or (derived and name != "func.return")
        ):
            self.weight_only.update(op.results)
            if name == "mlacc.weight" or any(v in self.weights for v in op.operands):
                self.weights.update(op.results)
            return True
        if name in FREE_OPS or not op.results:
            return True
        return any(tensor_info(r.type) is None for r in op.results)

    def _schedule(self, op: ir.OpView, layer: int | None) -> KernelSchedule:
        work = workload(op)
        name = op.operation.name
        extra = {"layer": layer}
        if isinstance(work, MatmulWork | AttentionWork):
            dtype, note = compute_dtype(self.device, work.dtype, self.fp8_fallback)
            if dtype != work.dtype:
                work = type(work)(**{**work.__dict__, "dtype": dtype})
            if note:
                extra["notes"] = (note,)
        if isinstance(work, MatmulWork):
            schedule = tile_matmul(work, self.device, name, self.buffers, **extra)
            if work.routing is not None:
                note = f"routing: {self.routing.source} (a functional run costs the rows it routes)"
                schedule = schedule.with_routing(self._rows(work.routing, layer))
                schedule = dataclasses.replace(schedule, notes=(*schedule.notes, note))
            return schedule
        if isinstance(work, AttentionWork):
            return tile_attention(work, self.device, name, self.buffers, **extra)
        schedule = tile_stream(work, self.device, name, self.buffers, **extra)
        if work.routing is not None and (schedule.link_bytes or schedule.network_bytes):
            skew = _receive_skew(self._rows(work.routing, layer)[: work.routing.routed], schedule)
            if skew > 1.0:
                note = (
                    f"routing: {self.routing.source}: the busiest chip takes {skew:.2f}x the mean"
                )
                schedule = dataclasses.replace(
                    schedule,
                    link_bytes=schedule.link_bytes * skew,
                    network_bytes=schedule.network_bytes * skew,
                    notes=(*schedule.notes, note),
                )
        return schedule

    def _rows(self, r: Routing, layer: int | None) -> tuple[float, ...]:
        """Rows per expert of the typical call the `routing` option draws for `layer`."""
        return sample_rows(
            self.routing,
            layer,
            tokens=r.tokens,
            top_k=r.top_k,
            routed=r.routed,
            shared=r.shared,
            block=r.block,
        )


def _receive_skew(rows: tuple[float, ...], s: KernelSchedule) -> float:
    """Busiest / mean chip of the routed rows the experts of each chip take (expert ``e`` on
    chip ``e * chips // experts``, as the grouped matmuls place them): the link of the chip
    with the hottest experts carries that much more than uniform spreading says."""
    chips = s.chips
    if chips < 2 or not rows or sum(rows) <= 0:
        return 1.0
    per_chip = [0.0] * chips
    for e, r in enumerate(rows):
        per_chip[e * chips // len(rows)] += r
    return max(per_chip) / (sum(per_chip) / chips)


def _nbytes(value: ir.Value) -> int:
    info = tensor_info(value.type)
    return nbytes(info) if info is not None else 0


# --- schedule <-> IR ---

_KERNEL_INTS = ("chips", "cores", "tiles", "buffers", "sram_bytes")


def annotate(op: ir.OpView, s: KernelSchedule) -> KernelOp:
    """Adds the ``accel.kernel`` that says `op` runs with schedule `s`, right after `op`."""
    i64 = ir.IntegerType.get_signless(64)
    with ir.InsertionPoint.after(op), op.location:
        kernel = KernelOp(
            of=op.results[0],
            op=ir.StringAttr.get(s.op),
            **{k: ir.IntegerAttr.get(i64, int(getattr(s, k))) for k in _KERNEL_INTS},
            flops=ir.FloatAttr.get(ir.F64Type.get(), float(s.flops)),
            hbm_bytes=ir.FloatAttr.get(ir.F64Type.get(), float(s.hbm_bytes)),
        )
        if s.layer is not None:
            kernel.attributes["accel.layer"] = python_to_attr(s.layer)
        if s.context is not None:
            kernel.attributes["accel.context"] = python_to_attr(shallow(s.context))
        if s.experts is not None:
            kernel.attributes["accel.experts"] = python_to_attr(shallow(s.experts))
        if s.notes:
            kernel.attributes["accel.notes"] = python_to_attr(list(s.notes))
        with ir.InsertionPoint(kernel.regions[0].blocks.append()):
            if s.link_phase == "dispatch":
                _link(s)
            if s.once_bytes:
                DmaOp(ir.StringAttr.get("once"), _i64(s.once_bytes))
            if s.load_bytes:
                DmaOp(ir.StringAttr.get("in"), _i64(s.load_bytes))
            if s.matmul is not None:
                mm = s.matmul
                MatmulOp(
                    _i64(mm.m), _i64(mm.n), _i64(mm.k), _i64(mm.count), ir.StringAttr.get(mm.dtype)
                )
            if s.vector_ops:
                VectorOp(_i64(s.vector_ops))
            if s.store_bytes:
                DmaOp(ir.StringAttr.get("out"), _i64(s.store_bytes))
            if s.link_phase == "combine":
                _link(s)
    return kernel


def _i64(value: float) -> ir.IntegerAttr:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), round(value))


def _link(s: KernelSchedule) -> None:
    LinkOp(_i64(s.link_bytes), ir.StringAttr.get(s.link_phase), _i64(s.network_bytes))


def schedule_of(kernel: ir.OpView) -> KernelSchedule:
    """The `KernelSchedule` an ``accel.kernel`` describes."""
    attrs = kernel.attributes
    values: dict = {k: ir.IntegerAttr(attrs[k]).value for k in _KERNEL_INTS}
    values["op"] = ir.StringAttr(attrs["op"]).value
    values["flops"] = ir.FloatAttr(attrs["flops"]).value
    values["hbm_bytes"] = ir.FloatAttr(attrs["hbm_bytes"]).value
    if "accel.layer" in attrs:
        values["layer"] = attr_to_python(attrs["accel.layer"])
    if "accel.context" in attrs:
        values["context"] = ContextStream(**attr_to_python(attrs["accel.context"]))
    if "accel.experts" in attrs:
        values["experts"] = ExpertStream(**attr_to_python(attrs["accel.experts"]))
    if "accel.notes" in attrs:
        values["notes"] = tuple(attr_to_python(attrs["accel.notes"]))
    values.update(load_bytes=0.0, store_bytes=0.0, once_bytes=0.0, vector_ops=0.0)
    for op in kernel.regions[0].blocks[0].operations:
        name = op.operation.name
        a = op.attributes
        if name == "accel.dma":
            key = {"in": "load_bytes", "out": "store_bytes", "once": "once_bytes"}[
                ir.StringAttr(a["direction"]).value
            ]
            values[key] += ir.IntegerAttr(a["bytes"]).value
        elif name == "accel.matmul":
            values["matmul"] = Matmul(
                *(ir.IntegerAttr(a[k]).value for k in ("m", "n", "k")),
                ir.StringAttr(a["dtype"]).value,
                ir.IntegerAttr(a["count"]).value,
            )
        elif name == "accel.vector":
            values["vector_ops"] += ir.IntegerAttr(a["ops"]).value
        elif name == "accel.link":
            values["link_bytes"] = float(ir.IntegerAttr(a["bytes"]).value)
            values["network_bytes"] = float(ir.IntegerAttr(a["network"]).value)
            values["link_phase"] = ir.StringAttr(a["phase"]).value
    return KernelSchedule(**values)


register_pass(
    "accel-lower",
    "Tile every graph op for the simulated accelerator (accel dialect kernels)",
    AccelLowerOptions,
    run,
)
