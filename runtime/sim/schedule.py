"""A kernel's schedule: how one lowered graph op runs on the accelerator, as plain data.

The `sim` lowering computes it from the op's shapes and the device (tile sizes that fit the
scratchpad, the tile loop each core runs, the bytes each DMA moves); the IR shows it as an
``accel.kernel`` and the plan carries it as the step's ``cost``. The simulator replays it.

One core runs ``tiles`` iterations of a software pipeline; with ``buffers`` scratchpad buffers
per operand, loads run up to ``buffers - 1`` tiles ahead of compute::

    load (DMA in) -> matmul (tensor engine) -> vector ops (vector engine) -> store (DMA out)

Before the loop each core loads ``once_bytes`` (operands reused by every tile, e.g. the
activations of a decode matmul); chip-to-chip ``link_bytes`` move before (``dispatch``) or after
(``combine``) the loop.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
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
    link_bytes: float = 0.0  # per chip, over the chip-to-chip links
    link_phase: str = ""  # "dispatch" (before the loop), "combine" (after) or ""
    flops: float = 0.0  # whole kernel (all cores, chips), for the report
    hbm_bytes: float = 0.0  # whole kernel, for the report
    layer: int | None = None
    # Attention: the loop streams the latent cache, so its length follows the context the
    # call attends to: step argument `context_arg` holds the positions (context = max + 1).
    context_arg: int = -1
    context_len: int = 0  # the context `tiles`, `flops` and `hbm_bytes` were computed for
    context_tile: int = 0  # cache tokens per tile
    context_splits: int = 1  # cores that share one sequence's cache (split-KV)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def at_context(self, context: int) -> KernelSchedule:
        """This schedule for a call that attends to `context` tokens (attention kernels;
        others are returned unchanged)."""
        if self.context_arg < 0 or context == self.context_len or context < 1:
            return self
        per_core = math.ceil(math.ceil(self.context_len / self.context_tile) / self.context_splits)
        new_per_core = math.ceil(math.ceil(context / self.context_tile) / self.context_splits)
        scale = context / self.context_len
        return replace(
            self,
            tiles=max(1, self.tiles // per_core * new_per_core),
            flops=self.flops * scale,
            hbm_bytes=self.hbm_bytes * scale,
            context_len=context,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
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
        values["notes"] = tuple(values.get("notes", ()))
        schedule = cls(**values)
        schedule.check()
        return schedule

    def check(self) -> None:
        """Raises ValueError when a count or size is out of range."""
        for name in ("chips", "cores", "tiles", "buffers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"kernel schedule '{name}' must be a positive integer, got {value}"
                )
        for name in (
            "sram_bytes",
            "load_bytes",
            "store_bytes",
            "once_bytes",
            "vector_ops",
            "link_bytes",
            "flops",
            "hbm_bytes",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"kernel schedule '{name}' must be >= 0, got {value}")
        if self.link_phase not in ("", "dispatch", "combine"):
            raise ValueError(f"kernel schedule 'link_phase' is '{self.link_phase}'")
