"""A kernel's schedule: how one lowered graph op runs on the accelerator, as plain data.

The `sim` lowering computes it from the op's shapes and the device (tile sizes that fit the
scratchpad, the tile loop each core runs, the bytes each DMA moves); the IR shows it as an
``accel.kernel`` and the plan carries it as the step's ``cost``. The simulator replays it.

One core runs ``tiles`` iterations of a software pipeline; with ``buffers`` scratchpad buffers
per operand, loads run up to ``buffers - 1`` tiles ahead of compute::

    load (DMA in) -> matmul (tensor engine) -> vector ops (vector engine) -> store (DMA out)

Before the loop each core loads ``once_bytes`` (operands reused by every tile, e.g. the
activations of a decode matmul); chip-to-chip bytes (``link_bytes`` within a node,
``network_bytes`` between nodes) move before (``dispatch``) or after (``combine``) the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Matmul:
    """One tensor-engine tile: ``[m, k] x [k, n]`` in `dtype`, repeated `count` times."""

    m: int
    n: int
    k: int
    dtype: str
    count: int = 1

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.count


@dataclass(frozen=True)
class ContextStream:
    """An attention kernel's cache stream: its length follows the context each call attends
    to, so the tile count and bytes are recomputed per call (`KernelSchedule.at_context`)."""

    arg: int  # the step argument holding the query positions (context = max + 1)
    length: int  # the context the schedule's tiles, FLOPs and bytes are for
    tile: int  # cache tokens per tile
    entry_bytes: int  # bytes per cached token
    splits: int  # cores sharing one sequence's cache (split-KV)
    units_per_core: int  # (sequence, query block) units the busiest core runs
    unit_in: float  # bytes each unit loads once (its queries)
    unit_out: float  # bytes each unit stores once (its output)
    stream_bytes: float  # cache bytes the whole kernel reads from HBM at `length`
    rows: int  # query rows (query block x heads) of a tile's products
    dims: int  # channels per cached token the products read (scores + values)
    causal_span: int = 0  # query positions after the first block: causal units stop earlier


@dataclass(frozen=True)
class ExpertStream:
    """A grouped expert matmul's routing: which experts run and with how many rows follows
    the tokens each call routes, so tiles, FLOPs and bytes are recomputed per call
    (`KernelSchedule.with_routing`) from the rows per expert (the dispatch's block-padded
    segment lengths)."""

    arg: int  # the step argument holding the expert offsets ([E + 1], block-padded)
    experts: int  # routed + shared experts in the weight stack
    tile_rows: int  # rows per tile (tm)
    n_tiles: int  # output-column tiles per expert
    k_tiles: int  # reduction tiles per output tile
    weight_bytes: float  # one expert's weight
    row_bytes: float  # one routed row in and out
    row_flops: float  # one routed row
    chips: int  # chips the routed experts are spread over (e on chip e * chips // routed)
    cores: int  # cores per chip
    imbalance: float = 1.0  # expert placement: busiest core's load / mean load
    shared: int = 0  # the last `shared` experts run on every chip, on its share of the rows


@dataclass(frozen=True)
class KernelSchedule:
    """Everything the simulator needs to time one kernel (per core, per tile)."""

    op: str
    chips: int  # chips the kernel runs on
    cores: int  # cores per chip
    tiles: int  # tile-loop iterations on the busiest core
    buffers: int  # scratchpad buffers per streamed operand (2 = double buffering)
    sram_bytes: int  # scratchpad bytes one core holds at once
    load_bytes: float  # per tile, HBM -> SRAM
    store_bytes: float  # per tile, SRAM -> HBM
    once_bytes: float = 0.0  # per core, before the loop
    matmul: Matmul | None = None  # per tile
    vector_ops: float = 0.0  # per tile
    link_bytes: float = 0.0  # per chip, over the scale-up links within its node
    network_bytes: float = 0.0  # per chip, over the scale-out network to other nodes
    link_phase: str = ""  # "dispatch" (before the loop), "combine" (after) or ""
    flops: float = 0.0  # whole kernel (all cores, chips), for the report
    hbm_bytes: float = 0.0  # whole kernel, for the report
    layer: int | None = None
    context: ContextStream | None = None  # attention kernels
    experts: ExpertStream | None = None  # grouped expert matmuls
    notes: tuple[str, ...] = field(default_factory=tuple)

    def at_context(self, context: int) -> KernelSchedule:
        """This schedule for a call that attends to `context` tokens (attention kernels;
        others are returned unchanged)."""
        if self.context is None or context == self.context.length or context < 1:
            return self
        return self.with_context(context)

    def with_context(self, context: int) -> KernelSchedule:
        """The attention loop over `context` cached tokens: per core, each of its units loads
        its queries, streams its share of the cache tiles it attends to and stores its output;
        the kernel's FLOPs and cache bytes scale with the tokens attended to."""
        c = self.context
        assert c is not None
        # Causal prefill: a query block at offset j attends to the context up to it, so the
        # blocks of a call stream, on average, all but half the span after the first block.
        seen = max(1.0, context - c.causal_span / 2)
        tokens = min(c.tile, math.ceil(seen))
        per_unit = math.ceil(math.ceil(seen / c.tile) / c.splits)
        scale = seen / (c.length - c.causal_span / 2)
        stream = c.stream_bytes * scale
        return replace(
            self,
            tiles=c.units_per_core * per_unit,
            load_bytes=tokens * c.entry_bytes + c.unit_in / per_unit,
            store_bytes=c.unit_out / per_unit,
            matmul=replace(self.matmul, n=tokens) if self.matmul is not None else None,
            vector_ops=5.0 * c.rows * tokens,
            flops=self.flops * scale,
            hbm_bytes=self.hbm_bytes - c.stream_bytes + stream,
            context=replace(c, length=context, stream_bytes=stream),
        )

    def with_routing(self, rows: list[float] | tuple[float, ...]) -> KernelSchedule:
        """This grouped matmul for a call whose experts get `rows` rows each (block-padded):
        only experts with rows run; each chip runs its experts' tiles on its cores, and the
        busiest chip sets the tile count; HBM reads the weights of the experts that run once
        and every routed row in and out."""
        x = self.experts
        assert x is not None and len(rows) == x.experts
        routed = x.experts - x.shared
        per_chip = [0.0] * x.chips
        active = 0  # expert weights read (a shared expert's on every chip)
        total_rows = 0.0
        for e, r in enumerate(rows):
            if r <= 0:
                continue
            total_rows += r
            if e < routed:
                active += 1
                per_chip[e * x.chips // routed] += math.ceil(r / x.tile_rows) * x.n_tiles
            else:
                active += x.chips
                for c in range(x.chips):
                    per_chip[c] += math.ceil(r / x.chips / x.tile_rows) * x.n_tiles
        busiest = max(per_chip) if active else 1.0
        cores = max(1, min(x.cores, math.ceil(busiest)))
        per_core = math.ceil(math.ceil(busiest / cores) * x.imbalance)
        return replace(
            self,
            cores=cores,
            tiles=max(1, per_core * x.k_tiles),
            flops=total_rows * x.row_flops,
            hbm_bytes=active * x.weight_bytes + total_rows * x.row_bytes,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able data (`from_json` reads it back)."""
        data = shallow(self)
        for name in ("matmul", "context", "experts"):
            if data[name] is not None:
                data[name] = shallow(data[name])
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelSchedule:
        """Inverse of `to_json`; raises TypeError/ValueError on malformed data."""
        if not isinstance(data, dict):
            raise TypeError(f"kernel schedule must be an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown kernel schedule field(s) {sorted(unknown)}")
        values = dict(data)
        if values.get("matmul") is not None:
            values["matmul"] = Matmul(**values["matmul"])
        if values.get("context") is not None:
            values["context"] = ContextStream(**values["context"])
        if values.get("experts") is not None:
            values["experts"] = ExpertStream(**values["experts"])
        values["notes"] = tuple(values.get("notes", ()))
        schedule = cls(**values)
        schedule.check()
        return schedule

    def check(self) -> None:
        """Raises ValueError naming the first field that is out of range or of the wrong type."""
        _check(self, "kernel schedule", _COUNTS, _AMOUNTS)
        if not isinstance(self.op, str) or self.link_phase not in ("", "dispatch", "combine"):
            raise ValueError("kernel schedule 'op' or 'link_phase' is malformed")
        if self.layer is not None and not _is_int(self.layer):
            raise ValueError(f"kernel schedule 'layer' must be an integer, got {self.layer!r}")
        if self.matmul is not None:
            _check(self.matmul, "kernel schedule matmul", ("m", "n", "k", "count"), ())
            if not isinstance(self.matmul.dtype, str):
                raise ValueError("kernel schedule matmul 'dtype' must be a string")
        if self.context is not None:
            c = self.context
            _check(c, "kernel schedule context", _CONTEXT_COUNTS, _CONTEXT_AMOUNTS)
            if not _is_int(c.arg) or c.arg < 0:
                raise ValueError(f"kernel schedule context 'arg' must be >= 0, got {c.arg!r}")
        if self.experts is not None:
            x = self.experts
            _check(x, "kernel schedule experts", _EXPERT_COUNTS, _EXPERT_AMOUNTS)
            if not _is_int(x.arg) or x.arg < 0:
                raise ValueError(f"kernel schedule experts 'arg' must be >= 0, got {x.arg!r}")


_COUNTS = ("chips", "cores", "tiles", "buffers")
_AMOUNTS = (
    "sram_bytes",
    "load_bytes",
    "store_bytes",
    "once_bytes",
    "vector_ops",
    "link_bytes",
    "network_bytes",
    "flops",
    "hbm_bytes",
)
_CONTEXT_COUNTS = ("length", "tile", "entry_bytes", "splits", "units_per_core", "rows", "dims")
_CONTEXT_AMOUNTS = ("unit_in", "unit_out", "stream_bytes")
_EXPERT_COUNTS = ("experts", "tile_rows", "n_tiles", "k_tiles", "chips", "cores")
_EXPERT_AMOUNTS = ("weight_bytes", "row_bytes", "row_flops", "imbalance")


def shallow(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, one level deep (`dataclasses.asdict` deep-copies,
    which is slow for the thousands of schedules of a full-size model)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(obj: Any, what: str, counts: tuple[str, ...], amounts: tuple[str, ...]) -> None:
    for name in counts:
        value = getattr(obj, name)
        if not _is_int(value) or value < 1:
            raise ValueError(f"{what} '{name}' must be a positive integer, got {value!r}")
    for name in amounts:
        value = getattr(obj, name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise ValueError(f"{what} '{name}' must be a finite number >= 0, got {value!r}")
