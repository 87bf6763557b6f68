"""What a simulation measured, as plain data: per kernel, per call, and for a whole run.

A *kernel* is one graph op lowered for the accelerator (one ``accel.kernel``). Times are in
device cycles; bytes per memory level (``hbm``, ``sram``, ``link``); engine busy time is summed
over the cores the kernel ran on (``l2``: tile traffic through the chip's L2, on devices
that have one). The renderers (table, JSON, trace, roofline plot) live in
`report`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

ENGINES = ("tensor", "vector", "dma", "link")
LEVELS = ("hbm", "l2", "sram", "link", "network")


@dataclass
class KernelTiming:
    """The simulated cost of one kernel in one call."""

    op: str  # graph op, e.g. "mla.latent_attention"
    location: str  # model source location ("model.py:123"), "" when unknown
    layer: int | None  # transformer layer index, when the weights name one
    start: float  # cycles since the call began
    end: float
    flops: float
    bytes: dict[str, float]  # memory level -> bytes moved
    busy: dict[str, float]  # engine -> busy cycles, summed over cores
    cores: int  # cores the kernel ran on (all chips)
    roofline_cycles: float  # lower bound: max(flops / peak, hbm bytes / bandwidth, ...)
    bound: str  # "compute" | "memory" | "link" | "latency": what limits it
    sram_peak: int  # scratchpad bytes one core holds at once (all buffers)
    energy_pj: float
    dtype: str = ""  # tensor-engine input dtype ("bf16", "fp8", ...), "" if no matmul

    @property
    def cycles(self) -> float:
        """Wall time of the kernel in cycles."""
        return self.end - self.start


@dataclass
class TraceEvent:
    """One span on an engine's timeline (Chrome/Perfetto "complete" event)."""

    track: str  # "core 0 / tensor", "hbm", "link", ...
    name: str
    start: float  # cycles since the run began
    duration: float
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallRecord:
    """One call of an entry point (a prefill, one decode step, a forward)."""

    entry: str
    batch: int
    tokens: int  # new tokens per sequence this call processed
    start: float  # cycles since the run began
    kernels: list[KernelTiming]
    events: list[TraceEvent] = field(default_factory=list)
    static_pj: float = 0.0  # static power over the call's wall time (not in any kernel)

    @property
    def cycles(self) -> float:
        """Wall time of the call: its last kernel's end."""
        return max((k.end for k in self.kernels), default=0.0)


@dataclass
class Totals:
    """Sums over kernels (of one call, or of a whole run)."""

    cycles: float = 0.0
    flops: float = 0.0
    energy_pj: float = 0.0  # kernels' dynamic energy plus the calls' static energy
    static_pj: float = 0.0  # the static part of energy_pj
    bytes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0.0))
    busy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ENGINES, 0.0))
    sram_peak: int = 0
    kernels: int = 0

    def add(self, k: KernelTiming) -> None:
        """Adds `k`'s flops, bytes, busy time and energy (not its cycles: calls overlap none)."""
        self.flops += k.flops
        self.energy_pj += k.energy_pj
        for level, n in k.bytes.items():
            self.bytes[level] = self.bytes.get(level, 0.0) + n
        for engine, n in k.busy.items():
            self.busy[engine] = self.busy.get(engine, 0.0) + n
        self.sram_peak = max(self.sram_peak, k.sram_peak)
        self.kernels += 1


@dataclass
class SimReport:
    """Everything one simulated run (a single call or a whole `generate`) cost on a device."""

    device: dict[str, Any]  # name, clock_ghz, cores, chips, peaks (see Device.summary())
    calls: list[CallRecord] = field(default_factory=list)
    kv_cache: dict[str, Any] | None = None  # the manifest's kv_cache section, if any
    timing_only: bool = False
    weight_bytes: float | None = None  # the compiled model's weights (after FP8), if known
    # The last speculative `generate` (runtime/generate.py): acceptance, target calls, its
    # simulated time after prefill against plain decoding of the same tokens, the speedup.
    speculation: dict[str, Any] | None = None

    @property
    def clock_hz(self) -> float:
        return float(self.device["clock_ghz"]) * 1e9

    @property
    def cycles(self) -> float:
        """Cycles of every call, back to back."""
        return sum(c.cycles for c in self.calls)

    def seconds(self, cycles: float | None = None) -> float:
        """`cycles` (default: the whole run) in seconds at the device clock."""
        return (self.cycles if cycles is None else cycles) / self.clock_hz

    def totals(self, entry: str | None = None) -> Totals:
        """Sums over every kernel of the calls to `entry` (all calls when None)."""
        t = Totals()
        for call in self.calls:
            if entry is None or call.entry == entry:
                t.cycles += call.cycles
                t.static_pj += call.static_pj
                t.energy_pj += call.static_pj
                for k in call.kernels:
                    t.add(k)
        return t

    def decode_calls(self) -> list[CallRecord]:
        """Calls that generate one token per sequence (decode steps)."""
        return [c for c in self.calls if c.entry == "decode"] or [
            c for c in self.calls if c.tokens == 1
        ]

    def time_per_token(self) -> float | None:
        """Seconds per decode step (one new token for every sequence), None without one."""
        calls = self.decode_calls()
        if not calls:
            return None
        return self.seconds(sum(c.cycles for c in calls)) / len(calls)

    def tokens_per_second(self) -> float | None:
        """Generated tokens per second over the decode steps (all sequences of the batch)."""
        calls = self.decode_calls()
        if not calls:
            return None
        seconds = self.seconds(sum(c.cycles for c in calls))
        return sum(c.batch * c.tokens for c in calls) / seconds if seconds else None

    def by_op(self) -> list[dict[str, Any]]:
        """Kernels grouped by (op, source location), most cycles first."""
        return _group(self, lambda k: (k.op, k.location))

    def by_layer(self) -> list[dict[str, Any]]:
        """Kernels grouped by layer index (None: outside the layers), in layer order."""
        rows = _group(self, lambda k: (k.layer,))
        return sorted(rows, key=lambda r: (r["layer"] is None, r["layer"] or 0))


def _group(report: SimReport, key) -> list[dict[str, Any]]:
    groups: dict[tuple, dict[str, Any]] = {}
    counts: dict[tuple, int] = defaultdict(int)
    for call in report.calls:
        for k in call.kernels:
            g = key(k)
            row = groups.get(g)
            if row is None:
                row = groups[g] = {
                    "op": k.op,
                    "location": k.location,
                    "layer": k.layer,
                    "cycles": 0.0,
                    "roofline_cycles": 0.0,
                    "flops": 0.0,
                    "bytes": dict.fromkeys(LEVELS, 0.0),
                    "busy": dict.fromkeys(ENGINES, 0.0),
                    "energy_pj": 0.0,
                    "bound": defaultdict(float),
                    "sram_peak": 0,
                }
            counts[g] += 1
            row["cycles"] += k.cycles
            row["roofline_cycles"] += k.roofline_cycles
            row["flops"] += k.flops
            row["energy_pj"] += k.energy_pj
            row["sram_peak"] = max(row["sram_peak"], k.sram_peak)
            row["bound"][k.bound] += k.cycles
            for level, n in k.bytes.items():
                row["bytes"][level] = row["bytes"].get(level, 0.0) + n
            for engine, n in k.busy.items():
                row["busy"][engine] = row["busy"].get(engine, 0.0) + n
    rows = []
    for g, row in groups.items():
        bound = row.pop("bound")
        row["bound"] = max(bound, key=bound.get) if bound else ""
        row["count"] = counts[g]
        rows.append(row)
    rows.sort(key=lambda r: -r["cycles"])
    return rows
