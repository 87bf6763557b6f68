"""The timing model: replays kernel schedules on a device, engine by engine.

Per kernel, one representative core runs its tile loop as a discrete-event pipeline: every
tile's load, matmul, vector work and store is an event on its engine (DMA-in, tensor, vector,
DMA-out), starting when its inputs are ready and its engine is free; a load waits for a
scratchpad buffer, freed when the compute of the tile ``buffers`` earlier ends. Every transfer
pays the memory latency. Engines run at their achievable rates (the device's ``efficiency``
fractions of the datasheet figures); the roofline stays at the datasheet peaks. A kernel gets
a fraction of its chip's bandwidth (all of it when alone), shared by the cores it runs on;
loads and stores of a core together move at most their share. With an L2, tiles stream from
it and the kernel also takes at least its HBM traffic at its share of the chip's HBM
bandwidth. After `EXPLICIT_TILES` iterations the pipeline is periodic, so the rest of the
loop is extended at the measured interval instead of being replayed tile by tile. Every
kernel pays the device's launch overhead first.

Across kernels, the executor list-schedules them onto the chips' cores in program order
(`CallTimeline`): a kernel starts when its operands are ready and enough cores are free, so
independent small kernels overlap. Bandwidth is booked: each kernel holds the fraction of the
chip's bandwidth it draws on average until it ends, and a kernel that starts while others run
gets only what they leave (or waits for them, when that ends it sooner), so overlapping
kernels never draw more than the chip has.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from .device import Device
from .records import KernelTiming, TraceEvent
from .schedule import KernelSchedule

EXPLICIT_TILES = 12


@dataclass
class KernelCost:
    """The simulated cost of one kernel, independent of when it starts."""

    cycles: float
    busy: dict[str, float]  # engine -> busy cycles summed over cores
    bytes: dict[str, float]
    energy_pj: float
    roofline_cycles: float
    bound: str
    events: list[tuple[str, str, float, float]] = field(default_factory=list)  # relative spans


def matmul_cycles(device: Device, m: int, n: int, k: int, dtype: str) -> float:
    """Tensor-engine cycles of one ``[m, k] x [k, n]`` tile: the array processes whole
    ``rows x cols`` blocks, so a partial block costs a full one."""
    tensor = device.core.tensor
    rows, cols = tensor.array
    padded = math.ceil(m / rows) * rows * math.ceil(n / cols) * cols * k
    return padded / (tensor.macs_per_cycle[dtype] * tensor.efficiency)


def tile_source(device: Device, cores: int, share: float = 1.0) -> tuple[float, float]:
    """(bytes per cycle, latency in cycles) of one core's tile traffic when `cores` cores of a
    chip stream the fraction `share` of its bandwidth: from the L2 when the chip has one, else
    from HBM, at the achievable bandwidth and at most the core's DMA engines' rate."""
    core = device.core
    level = device.l2 or device.hbm
    per_core = share * level.achievable / device.clock_hz / cores
    return min(per_core, core.dma_engines * core.dma_bytes_per_cycle), device.cycles(
        level.latency_s
    )


def simulate_kernel(
    s: KernelSchedule, device: Device, trace: bool = False, share: float = 1.0
) -> KernelCost:
    """Times one kernel (see the module docstring). `share`: the fraction of its chip's
    bandwidth (L2 and HBM) the kernel gets, 1.0 when it runs alone."""
    core = device.core
    per_core_bw, latency = tile_source(device, s.cores, share)
    traffic = s.load_bytes + s.store_bytes
    t_load = s.load_bytes / per_core_bw
    t_store = s.store_bytes / per_core_bw
    t_mma = 0.0
    if s.matmul is not None:
        mm = s.matmul
        t_mma = mm.count * matmul_cycles(device, mm.m, mm.n, mm.k, mm.dtype)
    vector_rate = core.vector.ops_per_cycle * core.vector.efficiency
    t_vec = s.vector_ops / vector_rate if s.vector_ops else 0.0
    events: list[tuple[str, str, float, float]] = []

    t_link = link_cycles(device, s)
    launch = device.launch_cycles
    if launch and trace:
        events.append(("dma in", "launch", 0.0, launch))
    start = launch + (t_link if s.link_phase == "dispatch" else 0.0)
    if t_link and trace and s.link_phase == "dispatch":
        events.append(("link", "dispatch", launch, t_link))

    # Prologue: operands every tile reuses.
    if s.once_bytes:
        t_once = s.once_bytes / per_core_bw + latency
        if trace:
            events.append(("dma in", "load once", start, t_once))
        start += t_once

    load_free = tensor_free = vector_free = store_free = start
    compute_end: list[float] = []
    ends: list[float] = []
    # Replay enough tiles to reach the periodic steady state (a period is at most `buffers`
    # tiles: the time for a buffer to come round), then measure whole periods.
    explicit = min(s.tiles, max(EXPLICIT_TILES, 4 * s.buffers))
    for i in range(explicit):
        ready = compute_end[i - s.buffers] if i >= s.buffers else start
        load_start = max(ready, load_free)
        load_free = load_start + t_load
        loaded = load_free + (latency if s.load_bytes else 0.0)
        mma_start = max(loaded, tensor_free)
        tensor_free = mma_start + t_mma
        vec_start = max(tensor_free, vector_free)
        vector_free = vec_start + t_vec
        compute_end.append(vector_free)
        store_start = max(vector_free, store_free)
        store_free = store_start + t_store
        ends.append(store_free + (latency if s.store_bytes else 0.0))
        if trace:
            for engine, name, at, dur in (
                ("dma in", "load", load_start, t_load),
                ("tensor", "matmul", mma_start, t_mma),
                ("vector", "vector", vec_start, t_vec),
                ("dma out", "store", store_start, t_store),
            ):
                if dur > 0:
                    events.append((engine, f"{name} {i}", at, dur))
    loop_end = max(ends) if ends else start
    remaining = s.tiles - explicit
    if remaining > 0:
        window = s.buffers * max(1, explicit // (2 * s.buffers))
        interval = (ends[-1] - ends[-1 - window]) / window
        if trace:
            events.append(("steady", f"{remaining} more tiles", loop_end, remaining * interval))
        loop_end += remaining * interval
    # Loads and stores each run at the core's full share when alone (pipeline fill and
    # drain); together they cannot move more than that share allows.
    cycles = max(loop_end, start + traffic * s.tiles / per_core_bw + (latency if traffic else 0.0))
    # With an L2, tiles stream from it and HBM sees the kernel's compulsory traffic: the
    # chip's HBM bandwidth still bounds the kernel.
    hbm_floor = 0.0
    if device.l2 is not None and s.hbm_bytes:
        hbm_bw = device.hbm_achievable_per_cycle * share
        hbm_floor = s.hbm_bytes / s.chips / hbm_bw + device.cycles(device.hbm.latency_s)
        cycles = max(cycles, start + hbm_floor)
    if t_link and s.link_phase != "dispatch":
        if trace:
            events.append(("link", "combine", cycles, t_link))
        cycles += t_link

    n_cores = s.cores * s.chips
    busy = {
        "tensor": t_mma * s.tiles * n_cores,
        "vector": t_vec * s.tiles * n_cores,
        # the core's share of HBM bandwidth in use (reads and writes together)
        "dma": (traffic * s.tiles + s.once_bytes) / per_core_bw * n_cores,
        "link": t_link * s.chips,
    }
    sram_traffic = s.load_bytes + s.store_bytes
    if s.matmul is not None:
        mm = s.matmul
        elt = DTYPE_BYTES.get(mm.dtype, 2)
        sram_traffic += mm.count * ((mm.m * mm.k + mm.k * mm.n) * elt + mm.m * mm.n * 4)
    streamed = (traffic * s.tiles + s.once_bytes) * n_cores
    bytes_ = {
        "hbm": s.hbm_bytes,
        "l2": streamed if device.l2 is not None else 0.0,
        "sram": sram_traffic * s.tiles * n_cores + s.once_bytes * n_cores,
        "link": s.link_bytes * s.chips,
        "network": s.network_bytes * s.chips,
    }
    energy = _energy(device, s, bytes_, n_cores)
    roof = roofline_cycles(device, s)
    return KernelCost(
        cycles,
        busy,
        bytes_,
        energy,
        roof,
        _bound(s, t_load, t_store, t_mma, t_vec, t_link, hbm_floor, cycles),
        events,
    )


DTYPE_BYTES = {"fp8": 1, "bf16": 2, "fp16": 2, "fp32": 4}


def roofline_cycles(device: Device, s: KernelSchedule) -> float:
    """The kernel's lower bound on the whole device: FLOPs at the dtype's peak, vector ops at
    the vector peak, HBM bytes at full bandwidth, link bytes at full link bandwidth."""
    n_cores = s.cores * s.chips
    bounds = [s.hbm_bytes / (device.hbm_bytes_per_cycle * s.chips)]
    if s.matmul is not None and s.flops:
        macs_per_cycle = device.core.tensor.macs_per_cycle[s.matmul.dtype]
        bounds.append(s.flops / (2 * macs_per_cycle * device.cores * device.chips))
    if s.vector_ops:
        # vector_ops is per tile; the kernel's total is at least tiles-worth on the busiest core
        total_vector = s.vector_ops * s.tiles * n_cores
        bounds.append(
            total_vector / (device.core.vector.ops_per_cycle * device.cores * device.chips)
        )
    if s.link_bytes and device.link is not None:
        bounds.append(s.link_bytes / (device.link.bandwidth / device.clock_hz))
    if s.network_bytes and device.network is not None:
        bounds.append(s.network_bytes / (device.network.bandwidth / device.clock_hz))
    return max(bounds)


def link_cycles(device: Device, s: KernelSchedule) -> float:
    """Cycles of the kernel's chip-to-chip transfer (0.0 without one): the scale-up and the
    scale-out part stream concurrently (a row crossing nodes is forwarded within the
    receiving node while the next ones arrive), each paying its latency."""
    levels = (
        (s.link_bytes, device.link, device.link_bytes_per_cycle),
        (s.network_bytes, device.network, device.network_bytes_per_cycle),
    )
    parts = [
        device.cycles(level.latency_s) + n / per_cycle
        for n, level, per_cycle in levels
        if n and level is not None
    ]
    return max(parts, default=0.0)


def _bound(s: KernelSchedule, t_load, t_store, t_mma, t_vec, t_link, hbm_floor, cycles) -> str:
    stage = {
        "memory": max((t_load + t_store) * s.tiles, hbm_floor),
        "compute": max(t_mma, t_vec) * s.tiles,
        "link": t_link,
    }
    kind = max(stage, key=stage.get)
    if cycles > 2 * stage[kind]:
        return "latency"
    return kind


def _energy(device: Device, s: KernelSchedule, bytes_: dict[str, float], n_cores: int) -> float:
    e = device.energy
    pj = 0.0
    if s.matmul is not None:
        pj += s.flops / 2 * e.pj_per_mac[s.matmul.dtype]
    pj += s.vector_ops * s.tiles * n_cores * e.pj_per_vector_op
    for level, n in bytes_.items():
        pj += n * e.pj_per_byte.get(level, 0.0)
    return pj


SHARE_STEP = 32  # bandwidth shares are booked in 1/32ths of the chip (cost-cache friendly)


def bandwidth_draw(device: Device, s: KernelSchedule, cost: KernelCost) -> float:
    """The fraction of its chip's achievable bandwidth `cost` draws on average (the larger of
    HBM and, with an L2, L2); what the kernel books while it runs."""
    if cost.cycles <= 0:
        return 0.0
    draws = [cost.bytes["hbm"] / s.chips / cost.cycles / device.hbm_achievable_per_cycle]
    if device.l2 is not None:
        draws.append(cost.bytes["l2"] / s.chips / cost.cycles / device.l2_bytes_per_cycle)
    return min(1.0, max(draws))


@dataclass
class CallTimeline:
    """Places kernels of one call on the cores: which core is free when, and which fraction of
    the chip's bandwidth the kernels still running have booked."""

    device: Device
    core_free: list[list[float]] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)  # chip 0's bookings, sorted by end ...
    fractions: list[float] = field(default_factory=list)  # ... and the fraction each holds

    def __post_init__(self) -> None:
        self.core_free = [[0.0] * self.device.cores for _ in range(self.device.chips)]

    def start(self, ready: float, chips: int, cores: int) -> tuple[float, list]:
        """When a kernel on the `cores` earliest-free cores of each of `chips` chips can start
        (no earlier than `ready`), and those cores."""
        chosen = []
        start = ready
        for chip in range(min(chips, self.device.chips)):
            free = self.core_free[chip]
            order = sorted(range(len(free)), key=free.__getitem__)[: min(cores, len(free))]
            chosen.append((chip, order))
            start = max(start, max(free[c] for c in order))
        return start, chosen

    def free_share(self, at: float) -> float:
        """The fraction of the chip's bandwidth not booked by kernels that end after `at`,
        rounded down to whole `SHARE_STEP`ths."""
        used = sum(self.fractions[bisect.bisect_right(self.ends, at) :])
        return math.floor(max(0.0, 1.0 - used) * SHARE_STEP + 1e-9) / SHARE_STEP

    def released(self, at: float) -> float:
        """When every kernel still running at `at` has ended (the whole bandwidth is free)."""
        return max(at, self.ends[-1]) if self.ends else at

    def commit(self, chosen: list, end: float, fraction: float) -> None:
        """Occupies the `chosen` cores until `end`; books `fraction` of the bandwidth."""
        for chip, order in chosen:
            for c in order:
                self.core_free[chip][c] = end
        i = bisect.bisect_right(self.ends, end)
        self.ends.insert(i, end)
        self.fractions.insert(i, fraction)


def kernel_timing(s: KernelSchedule, cost: KernelCost, start: float, location: str) -> KernelTiming:
    """The report record of a kernel that ran from `start`."""
    return KernelTiming(
        op=s.op,
        location=location,
        layer=s.layer,
        start=start,
        end=start + cost.cycles,
        flops=s.flops,
        bytes=cost.bytes,
        busy=cost.busy,
        cores=s.cores * s.chips,
        roofline_cycles=cost.roofline_cycles,
        bound=cost.bound,
        sram_peak=s.sram_bytes,
        energy_pj=cost.energy_pj,
        dtype=s.matmul.dtype if s.matmul is not None else "",
    )


def trace_events(
    cost: KernelCost, s: KernelSchedule, offset: float, label: str
) -> list[TraceEvent]:
    """`cost`'s engine spans (core 0 of the kernel) as trace events starting at `offset`."""
    return [
        TraceEvent(
            track=f"core 0 / {engine}", name=f"{label}: {name}", start=offset + at, duration=dur
        )
        for engine, name, at, dur in cost.events
    ]
