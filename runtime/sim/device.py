"""Device descriptions for the `sim` target: a TOML file in, a validated frozen `Device` out.

A description gives the clock, the chip and core counts, per-core engines (scratchpad, DMA,
tensor and vector units), the chip's HBM, the chip-to-chip link and per-event energies. Key
names carry their units (``clock_ghz``, ``sram_kib``, ``bandwidth_gbs``, ``latency_ns``); the
dataclasses hold SI units (bytes, bytes/s, seconds). The schema is one table, `_SCHEMA`, walked
by `_walk`; every defect is a `DeviceError` naming the file and the full key.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

DTYPES = ("bf16", "fp16", "fp32", "fp8")  # tensor-engine input dtypes a device may support


class DeviceError(InputError):
    """A device description is unreadable, not TOML, or breaks the schema."""


class _Bad(Exception):
    """A schema violation; `parse_device` prefixes the file name."""


@dataclass(frozen=True)
class TensorEngine:
    """The matrix unit of one core: array shape and MACs per cycle per supported dtype."""

    array: tuple[int, int]
    macs_per_cycle: dict[str, float]
    efficiency: float = 1.0  # achievable fraction of macs_per_cycle in a well-tiled loop

    def supports(self, dtype: str) -> bool:
        """Whether the tensor engine takes `dtype` inputs."""
        return dtype in self.macs_per_cycle


@dataclass(frozen=True)
class VectorEngine:
    """The elementwise unit of one core."""

    lanes: int
    ops_per_cycle: float
    efficiency: float = 1.0  # achievable fraction of ops_per_cycle


@dataclass(frozen=True)
class Core:
    """One core: scratchpad, DMA engines and compute engines."""

    sram_bytes: int
    dma_engines: int
    dma_bytes_per_cycle: float  # per engine
    tensor: TensorEngine
    vector: VectorEngine


@dataclass(frozen=True)
class Memory:
    """A memory level of a chip shared by its cores: HBM, or an on-chip L2 cache."""

    bandwidth: float  # bytes/s, datasheet
    latency_s: float
    capacity_bytes: int
    efficiency: float = 1.0  # achievable fraction of `bandwidth` (streaming kernels)

    @property
    def achievable(self) -> float:
        """Bytes/s a streaming kernel reaches: the datasheet bandwidth times `efficiency`."""
        return self.bandwidth * self.efficiency


@dataclass(frozen=True)
class Link:
    """One chip's chip-to-chip bandwidth, per direction: the scale-up links to the chips of
    its node (``[link]``) or the scale-out network to other nodes (``[network]``)."""

    bandwidth: float  # bytes/s, datasheet
    latency_s: float
    efficiency: float = 1.0  # achievable fraction of `bandwidth` (all-to-all traffic)

    @property
    def achievable(self) -> float:
        """Bytes/s an all-to-all transfer reaches: the datasheet bandwidth times `efficiency`."""
        return self.bandwidth * self.efficiency


@dataclass(frozen=True)
class Energy:
    """Energy per event in picojoules."""

    pj_per_mac: dict[str, float]  # dtype -> pJ
    pj_per_vector_op: float
    pj_per_byte: dict[str, float]  # memory level ("sram", "hbm", "link") -> pJ
    static_w: float = 0.0  # per chip: leakage, clocks, board, drawn whenever a call runs


@dataclass(frozen=True)
class Device:
    """A simulated accelerator: `chips` chips of `cores` identical cores each, in nodes of
    `chips_per_node` chips (one node when 0): scale-up links within a node, a scale-out
    network between nodes."""

    name: str
    description: str
    clock_ghz: float
    chips: int
    cores: int  # per chip
    core: Core
    hbm: Memory  # per chip
    link: Link | None
    energy: Energy
    source: str = field(repr=False)  # the TOML text this was parsed from
    l2: Memory | None = None  # per chip: tiles stream from here; HBM sees compulsory traffic
    launch_overhead_s: float = 0.0  # per kernel: launch and inter-kernel gap
    chips_per_node: int = 0  # 0: every chip in one node
    network: Link | None = None  # per chip, between nodes

    @property
    def nodes(self) -> int:
        """Nodes the chips form (1 when every chip shares one node)."""
        return self.chips // self.chips_per_node if self.chips_per_node else 1

    @property
    def clock_hz(self) -> float:
        """Clock frequency in Hz."""
        return self.clock_ghz * 1e9

    def peak_flops(self, dtype: str) -> float:
        """Dense tensor-engine FLOP/s of the whole device (all chips); 0.0 if unsupported."""
        macs = self.core.tensor.macs_per_cycle.get(dtype, 0.0)
        return 2.0 * macs * self.cores * self.chips * self.clock_hz

    @property
    def hbm_bytes_per_cycle(self) -> float:
        """Datasheet HBM bytes per cycle of one chip (the roofline's bandwidth)."""
        return self.hbm.bandwidth / self.clock_hz

    @property
    def hbm_achievable_per_cycle(self) -> float:
        """HBM bytes per cycle of one chip a streaming kernel reaches (derated)."""
        return self.hbm.achievable / self.clock_hz

    @property
    def l2_bytes_per_cycle(self) -> float:
        """Achievable L2 bytes per cycle of one chip; 0.0 without an L2."""
        return self.l2.achievable / self.clock_hz if self.l2 else 0.0

    @property
    def launch_cycles(self) -> float:
        """Cycles every kernel launch costs before its first tile."""
        return self.launch_overhead_s * self.clock_hz

    @property
    def link_bytes_per_cycle(self) -> float:
        """Achievable link bytes per cycle of one chip, each direction; 0.0 without a link."""
        return self.link.achievable / self.clock_hz if self.link else 0.0

    @property
    def network_bytes_per_cycle(self) -> float:
        """Achievable network bytes per cycle of one chip, each direction; 0.0 without one."""
        return self.network.achievable / self.clock_hz if self.network else 0.0

    def cycles(self, seconds: float) -> float:
        """Convert seconds to cycles."""
        return seconds * self.clock_hz

    def seconds(self, cycles: float) -> float:
        """Convert cycles to seconds."""
        return cycles / self.clock_hz

    def summary(self) -> dict[str, Any]:
        """The headline figures as JSON-able plain data; bandwidths, capacities and peaks are
        for the whole device (all chips), SRAM is per core."""
        core_cycles_per_s = self.cores * self.chips * self.clock_hz
        return {
            "name": self.name,
            "description": self.description,
            "clock_ghz": self.clock_ghz,
            "chips": self.chips,
            "cores": self.cores,
            "sram_bytes": self.core.sram_bytes,
            "hbm_bandwidth": self.hbm.bandwidth * self.chips,
            "hbm_efficiency": self.hbm.efficiency,
            "tensor_efficiency": self.core.tensor.efficiency,
            "launch_overhead_s": self.launch_overhead_s,
            "static_w": self.energy.static_w * self.chips,
            "hbm_latency_s": self.hbm.latency_s,
            "hbm_capacity_bytes": self.hbm.capacity_bytes * self.chips,
            "link_bandwidth": self.link.bandwidth if self.link else None,
            "chips_per_node": self.chips_per_node or self.chips,
            "network_bandwidth": self.network.bandwidth if self.network else None,
            "l2_bytes": self.l2.capacity_bytes * self.chips if self.l2 else None,
            "l2_bandwidth": self.l2.bandwidth * self.chips if self.l2 else None,
            "peak_flops": {d: self.peak_flops(d) for d in self.core.tensor.macs_per_cycle},
            "vector_ops_per_s": self.core.vector.ops_per_cycle * core_cycles_per_s,
        }


# --- the schema: nested tables of leaves, walked by `_walk` --------------------------------


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


@dataclass(frozen=True)
class _Leaf:
    """A scalar key: what it must be (for the message), the test, the conversion."""

    what: str
    ok: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value

    def check(self, key: str, value: Any) -> Any:
        if not self.ok(value):
            raise _Bad(f"key '{key}' must be {self.what}, got {_show(value)}")
        return self.convert(value)


@dataclass(frozen=True)
class _Optional:
    spec: Any  # a _Leaf or a nested table spec


_TEXT = _Leaf("a non-empty string", lambda v: isinstance(v, str) and v.strip() != "")
# A device's name travels in pass options (`device=...`): one word.
_NAME = _Leaf(
    "a name of letters, digits and . _ + - (no spaces)",
    lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9._+-]+", v) is not None,
)
_COUNT = _Leaf("a positive integer", lambda v: _is_int(v) and v > 0)
_POSITIVE = _Leaf("a positive number", lambda v: _is_number(v) and v > 0, float)
_NON_NEGATIVE = _Leaf("a non-negative number", lambda v: _is_number(v) and v >= 0, float)
_SHAPE = _Leaf(
    "two positive integers [rows, cols]",
    lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(d) and d > 0 for d in v),
    tuple,
)
_FRACTION = _Leaf("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1, float)
_PER_DTYPE = {d: _Optional(_POSITIVE) for d in DTYPES}
_LINK = {
    "bandwidth_gbs": _POSITIVE,
    "latency_ns": _NON_NEGATIVE,
    "efficiency": _Optional(_FRACTION),
}

_SCHEMA: dict[str, Any] = {
    "name": _NAME,
    "description": _TEXT,
    "clock_ghz": _POSITIVE,
    "chips": _COUNT,
    "cores": _COUNT,
    "launch_overhead_ns": _Optional(_NON_NEGATIVE),
    "core": {
        "sram_kib": _COUNT,
        "dma_engines": _COUNT,
        "dma_bytes_per_cycle": _POSITIVE,
        "tensor": {
            "array": _SHAPE,
            "macs_per_cycle": _PER_DTYPE,
            "efficiency": _Optional(_FRACTION),
        },
        "vector": {
            "lanes": _COUNT,
            "ops_per_cycle": _POSITIVE,
            "efficiency": _Optional(_FRACTION),
        },
    },
    "hbm": {
        "bandwidth_gbs": _POSITIVE,
        "latency_ns": _NON_NEGATIVE,
        "capacity_gib": _POSITIVE,
        "efficiency": _Optional(_FRACTION),
    },
    "l2": _Optional(
        {
            "size_mib": _POSITIVE,
            "bandwidth_gbs": _POSITIVE,
            "latency_ns": _NON_NEGATIVE,
            "efficiency": _Optional(_FRACTION),
        }
    ),
    "chips_per_node": _Optional(_COUNT),
    "link": _Optional(_LINK),
    "network": _Optional(_LINK),
    "energy": {
        "pj_per_mac": _PER_DTYPE,
        "pj_per_vector_op": _POSITIVE,
        "static_w": _Optional(_NON_NEGATIVE),
        "pj_per_byte": {
            "sram": _POSITIVE,
            "hbm": _POSITIVE,
            "l2": _Optional(_POSITIVE),
            "link": _Optional(_POSITIVE),
            "network": _Optional(_POSITIVE),
        },
    },
}


def _walk(value: Any, spec: _Leaf | dict[str, Any], key: str) -> Any:
    """Check `value` against `spec` (a leaf or a table of specs); return the converted data."""
    if isinstance(spec, _Leaf):
        return spec.check(key, value)
    if not isinstance(value, dict):
        raise _Bad(f"key '{key}' must be a table, got {_show(value)}")
    prefix = f"{key}." if key else ""
    for name in value:
        if name not in spec:
            raise _Bad(f"unknown key '{prefix}{name}' (expected one of: {', '.join(spec)})")
    out = {}
    for name, sub in spec.items():
        optional = isinstance(sub, _Optional)
        if name in value:
            out[name] = _walk(value[name], sub.spec if optional else sub, prefix + name)
        elif not optional:
            raise _Bad(f"missing key '{prefix}{name}'")
    return out


def _cross_check(raw: dict[str, Any]) -> None:
    """The rules that relate keys to each other."""
    macs = raw["core"]["tensor"]["macs_per_cycle"]
    if not macs:
        raise _Bad(f"key 'core.tensor.macs_per_cycle' must name at least one of {DTYPES}")
    for dtype in macs:
        if dtype not in raw["energy"]["pj_per_mac"]:
            raise _Bad(
                f"missing key 'energy.pj_per_mac.{dtype}' (core.tensor.macs_per_cycle has {dtype})"
            )
    if raw["chips"] > 1 and "link" not in raw:
        raise _Bad(f"missing key 'link' (required when chips > 1, here {raw['chips']})")
    per_node = raw.get("chips_per_node", raw["chips"])
    if raw["chips"] % per_node:
        raise _Bad(f"key 'chips_per_node' must divide 'chips' ({raw['chips']}), got {per_node}")
    if per_node < raw["chips"] and "network" not in raw:
        raise _Bad(
            f"missing key 'network' (required when chips_per_node < chips, here "
            f"{per_node} < {raw['chips']})"
        )
    for level in ("link", "l2", "network"):
        if level in raw and level not in raw["energy"]["pj_per_byte"]:
            raise _Bad(
                f"missing key 'energy.pj_per_byte.{level}' (required when [{level}] is present)"
            )


def _link(raw: dict[str, Any] | None) -> Link | None:
    if raw is None:
        return None
    return Link(raw["bandwidth_gbs"] * 1e9, raw["latency_ns"] / 1e9, raw.get("efficiency", 1.0))


def _build(raw: dict[str, Any], text: str) -> Device:
    core, hbm, energy = raw["core"], raw["hbm"], raw["energy"]
    l2 = raw.get("l2")
    return Device(
        name=raw["name"],
        description=raw["description"],
        clock_ghz=raw["clock_ghz"],
        chips=raw["chips"],
        cores=raw["cores"],
        launch_overhead_s=raw.get("launch_overhead_ns", 0.0) / 1e9,
        core=Core(
            sram_bytes=core["sram_kib"] * 1024,
            dma_engines=core["dma_engines"],
            dma_bytes_per_cycle=core["dma_bytes_per_cycle"],
            tensor=TensorEngine(**core["tensor"]),
            vector=VectorEngine(**core["vector"]),
        ),
        hbm=Memory(
            bandwidth=hbm["bandwidth_gbs"] * 1e9,
            latency_s=hbm["latency_ns"] / 1e9,
            capacity_bytes=round(hbm["capacity_gib"] * 2**30),
            efficiency=hbm.get("efficiency", 1.0),
        ),
        link=_link(raw.get("link")),
        chips_per_node=raw.get("chips_per_node", 0),
        network=_link(raw.get("network")),
        l2=(
            Memory(
                bandwidth=l2["bandwidth_gbs"] * 1e9,
                latency_s=l2["latency_ns"] / 1e9,
                capacity_bytes=round(l2["size_mib"] * 2**20),
                efficiency=l2.get("efficiency", 1.0),
            )
            if l2
            else None
        ),
        energy=Energy(**energy),
        source=text,
    )


def parse_device(text: str, source: str = "<string>") -> Device:
    """Parse and validate a device description; `source` names it in error messages.

    Raises:
        DeviceError: the text is not TOML or breaks the schema.
    """
    try:
        raw = _walk(tomllib.loads(text), _SCHEMA, "")
        _cross_check(raw)
    except tomllib.TOMLDecodeError as e:
        raise DeviceError(f"device file '{source}': invalid TOML: {e}") from None
    except _Bad as e:
        raise DeviceError(f"device file '{source}': {e}") from None
    return _build(raw, text)


def load_device(path: str | os.PathLike[str]) -> Device:
    """Read and parse the device description at `path`.

    Raises:
        DeviceError: the file is unreadable, not UTF-8, not TOML, or breaks the schema.
    """
    label = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise DeviceError(f"device file '{label}': cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise DeviceError(f"device file '{label}': not UTF-8 text: {e.reason}") from None
    return parse_device(text, label)


def derive_device(base: Device, overrides: dict[str, Any]) -> Device:
    """`base` with `overrides` (a table shaped like the TOML, merged key by key) applied: a
    cluster of a preset's chips, a what-if variant. The result's `source` is its own
    complete TOML (base comments are not kept).

    Raises:
        DeviceError: the merged description breaks the schema.
    """
    merged = _merge(tomllib.loads(base.source), overrides)
    return parse_device(_toml_text(merged), f"{base.name} with overrides")


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + "".join(_toml_char(c) for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _toml_char(c: str) -> str:
    """`c` inside a TOML basic string: quote, backslash and control characters escaped."""
    if c in '"\\':
        return "\\" + c
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"\\u{ord(c):04x}"
    return c


def _toml_text(table: dict[str, Any], prefix: str = "") -> str:
    """`table` as TOML: its scalars under a ``[prefix]`` header, then its sub-tables."""
    scalars = [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += scalars
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines += ["", _toml_text(sub, f"{prefix}.{key}" if prefix else key)]
    return "\n".join(lines) + ("\n" if not prefix else "")


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``["chips=72", "network.bandwidth_gbs=50"]`` -> the nested table `derive_device`
    takes; each value is a TOML value (``72``, ``0.9``, ``"text"``, ``[16, 16]``).

    Raises:
        DeviceError: an assignment without ``=`` or whose value is not a TOML value.
    """
    table: dict[str, Any] = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or not all(re.fullmatch(r"[A-Za-z0-9_-]+", part) for part in path):
            raise DeviceError(
                f"device setting '{text}': expected KEY=VALUE, KEY of letters, digits, _ and - "
                "(dotted for a table: network.bandwidth_gbs)"
            )
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise DeviceError(
                f"device setting '{text}': '{value.strip()}' is not a TOML value "
                '(numbers as 72 or 0.9, text as "quoted")'
            ) from None
        if not isinstance(parsed, (str, int, float, list, dict)):  # bool is an int
            raise DeviceError(
                f"device setting '{text}': a device holds numbers, text, lists and tables, "
                f"not a {type(parsed).__name__}"
            )
        node = table
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DeviceError(f"device setting '{text}': '{part}' is already a value")
        if isinstance(node.get(path[-1]), dict):
            raise DeviceError(f"device setting '{text}': '{key.strip()}' is already a table")
        node[path[-1]] = parsed
    return table
