"""Renderers of a `SimReport`: a table for stdout, a JSON dict, a Chrome/Perfetto trace and a
roofline plot.

Pure Python (matplotlib only inside `plot_roofline`, imported there). Every renderer copes with
a report without calls, with zero-cycle kernels and with a device dict that lacks keys.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from numbers import Integral, Real
from typing import Any

from mlacc.fileio import atomic_output, write_atomic

from .records import ENGINES, LEVELS, CallRecord, SimReport

__all__ = ["format_table", "plot_roofline", "report_to_json", "trace_events", "write_trace"]

_UTIL_ENGINES = ("tensor", "vector", "dma")
_MAX_LAYER_ROWS = 70
_BOUND_COLORS = {
    "compute": "tab:red",
    "memory": "tab:blue",
    "link": "tab:purple",
    "latency": "tab:gray",
}

# --------------------------------------------------------------------------------------------
# Numbers derived from a report (shared by the table and the JSON)
# --------------------------------------------------------------------------------------------


def _num(value: Any) -> float:
    """`value` as a float, 0.0 when it is missing or not a number."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def _clock_hz(report: SimReport) -> float:
    return _num(report.device.get("clock_ghz")) * 1e9


def _seconds(report: SimReport, cycles: float) -> float | None:
    clock = _clock_hz(report)
    return cycles / clock if clock > 0 else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or not den:
        return None
    return num / den


def _total_cores(report: SimReport) -> int:
    cores = int(_num(report.device.get("cores", 1)))
    chips = int(_num(report.device.get("chips", 1)))
    return max(cores, 0) * max(chips, 0)


def _tokens(calls: list[CallRecord]) -> int:
    return sum(c.batch * c.tokens for c in calls)


def _entries(report: SimReport) -> list[dict[str, Any]]:
    """One summary row per entry point, in order of first call."""
    groups: dict[str, list[CallRecord]] = {}
    for call in report.calls:
        groups.setdefault(call.entry, []).append(call)
    rows = []
    for entry, calls in groups.items():
        cycles = sum(c.cycles for c in calls)
        seconds = _seconds(report, cycles)
        tokens = _tokens(calls)
        rows.append(
            {
                "entry": entry,
                "calls": len(calls),
                "batch": sorted({c.batch for c in calls}),
                "tokens": tokens,
                "cycles": cycles,
                "seconds": seconds,
                "tokens_per_second": _ratio(tokens, seconds),
            }
        )
    return rows


def _bound_cycles(report: SimReport) -> dict[str, float]:
    """Kernel cycles per limiting resource, over the whole run."""
    out: dict[str, float] = defaultdict(float)
    for call in report.calls:
        for k in call.kernels:
            out[k.bound or "unknown"] += k.cycles
    return dict(out)


def _utilization(report: SimReport, busy: dict[str, float]) -> dict[str, float | None]:
    """Engine busy cycles / (run cycles x cores x chips), per engine."""
    den = report.cycles * _total_cores(report)
    engines = list(dict.fromkeys([*ENGINES, *busy]))
    return {e: _ratio(busy.get(e, 0.0), den) for e in engines}


def _time_per_token(report: SimReport) -> float | None:
    return report.time_per_token() if _clock_hz(report) > 0 else None


def _tokens_per_second(report: SimReport) -> float | None:
    return report.tokens_per_second() if _clock_hz(report) > 0 else None


# --------------------------------------------------------------------------------------------
# Human units
# --------------------------------------------------------------------------------------------


def _si(x: float | None, unit: str = "") -> str:
    """`x` with a K/M/G/T/P prefix and about three significant digits ("1.23M")."""
    if x is None or not math.isfinite(x):
        return "-"
    sign = "-" if x < 0 else ""
    x = abs(x)
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= scale * 0.9995:
            return f"{sign}{_digits(x / scale)}{' ' if unit else ''}{prefix}{unit}"
    return f"{sign}{_digits(x)}{' ' + unit if unit else ''}"


def _digits(x: float) -> str:
    if x == int(x) and x < 1000:
        return str(int(x))
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _bytes(x: float | None) -> str:
    return _si(x, "B")


def _time(s: float | None) -> str:
    """Seconds in s/ms/us/ns."""
    if s is None or not math.isfinite(s):
        return "-"
    a = abs(s)
    if a == 0:
        return "0 s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if a >= scale * 0.9995:
            return f"{_digits(s / scale)} {unit}"
    return f"{_digits(s / 1e-9)} ns"


def _energy(pj: float | None) -> str:
    """Picojoules in J/mJ/uJ/nJ/pJ."""
    if pj is None or not math.isfinite(pj):
        return "-"
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale * 0.9995:
            return f"{_digits(pj / scale)} {unit}"
    return f"{_digits(pj)} pJ"


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _tflops(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e12:,.2f} TFLOP/s"


def _gbps(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e9:,.1f} GB/s"


def _tok_s(x: float | None) -> str:
    """Tokens per second as printed in the table ("1,234.5")."""
    return "-" if x is None or not math.isfinite(x) else f"{x:,.1f}"


def _table(headers: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Aligned text rows; `align` has one "l" or "r" per column."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)]
        return "  ".join(out).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


# --------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------


def format_table(report: SimReport, top: int = 15) -> str:
    """The report as aligned text: device, calls per entry, totals, top ops, layers, KV cache."""
    lines: list[str] = []
    lines += _header_lines(report)
    lines += ["", *_entry_lines(report)]
    lines += ["", *_total_lines(report)]
    if report.speculation:
        lines += ["", *_speculation_lines(report.speculation)]
    lines += ["", *_op_lines(report, top)]
    lines += ["", *_layer_lines(report)]
    kv = _kv_line(report.kv_cache)
    if kv:
        lines += ["", kv]
    footprint = _footprint_line(report)
    if footprint:
        lines.append(footprint)
    return "\n".join(lines) + "\n"


def _footprint_line(report: SimReport) -> str:
    """Weights + KV cache against the device's HBM capacity (all chips)."""
    weights = report.weight_bytes
    if weights is None:
        return ""
    cache = _num((report.kv_cache or {}).get("bytes")) or 0.0
    used = _num(weights) + cache
    text = f"Memory: weights {_bytes(_num(weights))} + KV cache {_bytes(cache)} = {_bytes(used)}"
    capacity = _num(report.device.get("hbm_capacity_bytes"))
    if capacity:
        text += f" of {_bytes(capacity)} HBM ({_pct(_ratio(used, capacity))})"
        if used > capacity:
            text += ": does NOT fit this device (timed as if it did)"
    return text


def _header_lines(report: SimReport) -> list[str]:
    d = report.device
    name = str(d.get("name", "?"))
    out = [f"Simulated on {name}" + (f": {d['description']}" if d.get("description") else "")]
    clock = _clock_hz(report)
    parts = [
        f"clock {_num(d.get('clock_ghz')):.2f} GHz" if clock else "clock unknown",
        f"{d.get('cores', '?')} cores x {d.get('chips', '?')} chips",
    ]
    if d.get("sram_bytes"):
        parts.append(f"SRAM {_bytes(_num(d['sram_bytes']))}/core")
    if d.get("hbm_bandwidth"):
        parts.append(f"HBM {_gbps(_num(d['hbm_bandwidth']))}")
    if d.get("hbm_capacity_bytes"):
        parts.append(f"{_bytes(_num(d['hbm_capacity_bytes']))} HBM")
    if d.get("link_bandwidth"):
        parts.append(f"link {_gbps(_num(d['link_bandwidth']))}")
    if d.get("network_bandwidth"):
        parts.append(
            f"nodes of {d.get('chips_per_node', '?')} chips, network "
            f"{_gbps(_num(d['network_bandwidth']))}"
        )
    out.append("  " + ", ".join(parts))
    peaks = d.get("peak_flops") or {}
    if peaks:
        out.append(
            "  peak " + ", ".join(f"{dt} {_tflops(_num(v))}" for dt, v in sorted(peaks.items()))
        )
    if report.timing_only:
        out.append("  timing only: kernels were timed, their outputs not computed")
    return out


def _entry_lines(report: SimReport) -> list[str]:
    rows = []
    for e in _entries(report):
        batch = e["batch"]
        rows.append(
            [
                e["entry"],
                str(e["calls"]),
                str(batch[0]) if len(batch) == 1 else f"{batch[0]}-{batch[-1]}",
                _si(e["tokens"]),
                _si(e["cycles"]),
                _time(e["seconds"]),
                _time(_ratio(e["seconds"], e["calls"])),
                _tok_s(e["tokens_per_second"]),
            ]
        )
    if not rows:
        return ["Calls: none"]
    headers = ["entry", "calls", "batch", "tokens", "cycles", "time", "time/call", "tokens/s"]
    return ["Calls", *_table(headers, rows, "lrrrrrrr")]


def _total_lines(report: SimReport) -> list[str]:
    d = report.device
    t = report.totals()
    cycles = report.cycles
    seconds = _seconds(report, cycles)
    kv: list[tuple[str, str]] = []
    tpt, tps = _time_per_token(report), _tokens_per_second(report)
    if tpt is not None:
        kv.append(("decode", f"{_time(tpt)} per token step, {_tok_s(tps)} tokens/s"))
    kv.append(("time", f"{_si(cycles)} cycles, {_time(seconds)}, {t.kernels} kernels"))

    achieved = _ratio(t.flops, seconds)
    flops = f"{_si(t.flops, 'FLOP')}, achieved {_tflops(achieved)}"
    peaks = d.get("peak_flops") or {}
    if achieved is not None and peaks:
        shares = [f"{_pct(_ratio(achieved, _num(p)))} of {dt}" for dt, p in sorted(peaks.items())]
        flops += " (" + ", ".join(shares) + " peak)"
    kv.append(("compute", flops))

    levels = list(dict.fromkeys([*LEVELS, *t.bytes]))
    kv.append(("bytes", ", ".join(f"{lv} {_bytes(t.bytes.get(lv, 0.0))}" for lv in levels)))
    hbm_rate = _ratio(t.bytes.get("hbm", 0.0), seconds)
    hbm = f"achieved {_gbps(hbm_rate)}"
    if d.get("hbm_bandwidth"):
        peak = _num(d["hbm_bandwidth"])
        hbm += f" of {_gbps(peak)} peak ({_pct(_ratio(hbm_rate, peak))})"
    kv.append(("HBM", hbm))

    tokens = _tokens(report.calls)
    energy = _energy(t.energy_pj)
    if tokens:
        energy += f", {_energy(t.energy_pj / tokens)}/token over {_si(tokens)} tokens"
    if t.static_pj:
        energy += f" (static {_energy(t.static_pj)})"
    kv.append(("energy", energy))

    sram = f"{_bytes(t.sram_peak)} per core"
    if d.get("sram_bytes"):
        cap = _num(d["sram_bytes"])
        sram += f" of {_bytes(cap)} ({_pct(_ratio(t.sram_peak, cap))})"
    kv.append(("SRAM peak", sram))

    util = _utilization(report, t.busy)
    shown = [e for e in util if e in _UTIL_ENGINES or t.busy.get(e)]
    kv.append(("utilization*", ", ".join(f"{e} {_pct(util[e])}" for e in shown)))

    bound = _bound_cycles(report)
    total = sum(bound.values())
    order = sorted(bound, key=lambda b: (b not in _BOUND_COLORS, -bound[b]))
    shares = ", ".join(f"{b} {_pct(_ratio(bound[b], total))}" for b in order)
    kv.append(("bound", f"{shares} of kernel cycles" if shares else "-"))

    width = max(len(k) for k, _ in kv)
    out = ["Totals", *(f"  {k.ljust(width)}  {v}" for k, v in kv)]
    out.append(
        "  * utilization = engine busy cycles (summed over cores) / (run cycles x cores x chips)"
    )
    return out


def _speculation_lines(spec: dict[str, Any]) -> list[str]:
    """The last speculative generate: acceptance and simulated speedup over plain decoding."""
    rate = spec.get("acceptance_rate")
    out = [
        f"Speculative decoding ({spec.get('method', '?')}, the last speculative generate)",
        f"  drafts    {spec.get('accepted', 0)} of {spec.get('drafted', 0)} accepted "
        f"({_pct(rate)}), {_num(spec.get('tokens_per_target_call')):.2f} tokens per target "
        f"call ({spec.get('verify_calls', 0)} verify + {spec.get('draft_calls', 0)} draft calls)",
    ]
    per, plain = spec.get("seconds_per_token"), spec.get("plain_seconds_per_token")
    speedup = spec.get("speedup")
    if per is not None and plain is not None:
        out.append(
            f"  time      {_time(per)} per token vs {_time(plain)} for plain decode "
            f"(simulated after prefill): {_num(speedup):.2f}x speedup"
        )
    return out


def _op_lines(report: SimReport, top: int) -> list[str]:
    ops = report.by_op()
    if not ops:
        return ["Ops: none"]
    total = sum(r["cycles"] for r in ops)
    rows = []
    for r in ops[: max(top, 0)]:
        ratio = _ratio(r["cycles"], r["roofline_cycles"])
        rows.append(
            [
                r["op"],
                _short(r["location"] or "-", 40),
                str(r["count"]),
                _si(r["cycles"]),
                _pct(_ratio(r["cycles"], total)),
                _si(r["roofline_cycles"]),
                "-" if ratio is None else f"{ratio:.2f}x",
                r["bound"] or "-",
                _bytes(r["bytes"].get("hbm", 0.0)),
            ]
        )
    headers = ["op", "location", "count", "cycles", "%", "roofline", "/roof", "bound", "hbm"]
    title = f"Top {len(rows)} of {len(ops)} ops by cycles (% of all kernel cycles)"
    return [title, *_table(headers, rows, "llrrrrrlr")]


def _layer_lines(report: SimReport) -> list[str]:
    layers = report.by_layer()
    if not layers:
        return ["Layers: none"]
    total = sum(r["cycles"] for r in layers)
    rows = [
        [
            "-" if r["layer"] is None else str(r["layer"]),
            str(r["count"]),
            _si(r["cycles"]),
            _pct(_ratio(r["cycles"], total)),
            _si(r["flops"]),
            _bytes(r["bytes"].get("hbm", 0.0)),
            r["bound"] or "-",
        ]
        for r in layers[:_MAX_LAYER_ROWS]
    ]
    headers = ["layer", "kernels", "cycles", "%", "flops", "hbm", "bound"]
    out = ["Layers ('-': outside the layers)", *_table(headers, rows, "rrrrrrl")]
    if len(layers) > _MAX_LAYER_ROWS:
        out.append(f"  ... {len(layers) - _MAX_LAYER_ROWS} more rows not shown")
    return out


def _kv_line(kv: dict[str, Any] | None) -> str:
    if not kv:
        return ""
    parts = []
    latent = kv.get("values_per_token_per_layer")
    mha = kv.get("mha_values_per_token_per_layer")
    if latent is not None:
        text = f"{_si(_num(latent))} latent values/token/layer"
        if mha:
            text += f" vs {_si(_num(mha))} MHA"
            if _num(latent):
                text += f" ({_num(mha) / _num(latent):.1f}x smaller)"
        parts.append(text)
    elif mha is not None:
        parts.append(f"MHA would need {_si(_num(mha))} values/token/layer")
    if kv.get("bytes_per_token") is not None:
        parts.append(f"{_bytes(_num(kv['bytes_per_token']))}/token")
    for key, label in (("layers", "layers"), ("dtype", "")):
        if kv.get(key) is not None:
            parts.append(f"{kv[key]} {label}".strip())
    if kv.get("bytes") is not None:
        text = f"{_bytes(_num(kv['bytes']))} total"
        shape = [f"{key} {kv[key]}" for key in ("batch", "context") if kv.get(key) is not None]
        if shape:
            text += " at " + ", ".join(shape)
        parts.append(text)
    known = {
        "values_per_token_per_layer",
        "mha_values_per_token_per_layer",
        "bytes_per_token",
        "layers",
        "dtype",
        "bytes",
        "batch",
        "context",
    }
    parts += [f"{k}={v}" for k, v in kv.items() if k not in known]
    return "KV cache: " + ", ".join(parts)


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """`value` with only JSON types; non-finite floats become None, unknown objects str."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        x = float(value)
        return x if math.isfinite(x) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def report_to_json(report: SimReport) -> dict[str, Any]:
    """The report as a JSON-able dict (all floats finite; unknowns are null)."""
    t = report.totals()
    cycles = report.cycles
    seconds = _seconds(report, cycles)
    bound = _bound_cycles(report)
    kernel_cycles = sum(bound.values())
    tokens = _tokens(report.calls)
    totals = {
        "cycles": cycles,
        "seconds": seconds,
        "kernels": t.kernels,
        "flops": t.flops,
        "flops_per_second": _ratio(t.flops, seconds),
        "bytes": dict(t.bytes),
        "hbm_bytes_per_second": _ratio(t.bytes.get("hbm", 0.0), seconds),
        "energy_pj": t.energy_pj,
        "static_energy_pj": t.static_pj,
        "tokens": tokens,
        "energy_pj_per_token": _ratio(t.energy_pj, tokens),
        "sram_peak": t.sram_peak,
        "busy": dict(t.busy),
        "utilization": _utilization(report, t.busy),
        "time_per_token_s": _time_per_token(report),
        "tokens_per_second": _tokens_per_second(report),
        "compute_bound_fraction": _ratio(bound.get("compute", 0.0), kernel_cycles) or 0.0,
        "bound_fraction": {b: _ratio(c, kernel_cycles) for b, c in bound.items()},
    }
    calls = [
        {
            "entry": c.entry,
            "batch": c.batch,
            "tokens": c.tokens,
            "start": c.start,
            "cycles": c.cycles,
            "seconds": _seconds(report, c.cycles),
            "kernels": len(c.kernels),
        }
        for c in report.calls
    ]
    return _jsonable(
        {
            "device": report.device,
            "timing_only": report.timing_only,
            "totals": totals,
            "entries": _entries(report),
            "calls": calls,
            "ops": report.by_op(),
            "layers": report.by_layer(),
            "kv_cache": report.kv_cache,
            "weight_bytes": report.weight_bytes,
            "speculation": report.speculation,
        }
    )


# --------------------------------------------------------------------------------------------
# Chrome / Perfetto trace
# --------------------------------------------------------------------------------------------


def _natural(text: str) -> list[Any]:
    return [int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", text))]


def trace_events(report: SimReport) -> list[dict[str, Any]]:
    """The "traceEvents" array: one thread per call (the call and its kernels) and one per
    engine track of the calls' `TraceEvent`s, all in one process; times in microseconds."""
    clock = _clock_hz(report)
    us = 1e6 / clock if clock > 0 else 1.0  # without a clock, one cycle shows as 1 us
    pid = 1
    events: list[dict[str, Any]] = [
        {
            "ph": "M",
            "pid": pid,
            "tid": 0,
            "name": "process_name",
            "args": {"name": str(report.device.get("name", "device"))},
        },
        {"ph": "M", "pid": pid, "tid": 0, "name": "process_sort_index", "args": {"sort_index": 0}},
    ]

    def thread(tid: int, name: str, index: int) -> None:
        events.append(
            {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}
        )
        events.append(
            {
                "ph": "M",
                "pid": pid,
                "tid": tid,
                "name": "thread_sort_index",
                "args": {"sort_index": index},
            }
        )

    def span(tid: int, name: str, cat: str, start: float, dur: float, args: dict) -> None:
        events.append(
            {
                "ph": "X",
                "pid": pid,
                "tid": tid,
                "name": name,
                "cat": cat,
                "ts": start * us,
                "dur": max(dur, 0.0) * us,
                "args": args,
            }
        )

    tracks: dict[str, int] = {}
    for c in report.calls:
        for e in c.events:
            tracks.setdefault(e.track, 0)
    first_engine_tid = len(report.calls) + 1
    for i, name in enumerate(sorted(tracks, key=_natural)):
        tracks[name] = first_engine_tid + i
        thread(tracks[name], name, first_engine_tid + i)

    for i, c in enumerate(report.calls):
        tid = i + 1
        thread(tid, f"call {i}: {c.entry}", tid)
        args = {"entry": c.entry, "batch": c.batch, "tokens": c.tokens, "cycles": c.cycles}
        span(tid, c.entry, "call", c.start, c.cycles, args)
        for k in c.kernels:
            args = {
                "location": k.location,
                "layer": k.layer,
                "bound": k.bound,
                "cycles": k.cycles,
                "roofline_cycles": k.roofline_cycles,
                "flops": k.flops,
                "bytes": k.bytes,
                "dtype": k.dtype,
                "energy_pj": k.energy_pj,
            }
            span(tid, k.op, "kernel", c.start + k.start, k.cycles, args)
        for e in c.events:
            span(tracks[e.track], e.name, "engine", e.start, e.duration, dict(e.args))
    return _jsonable(events)


def write_trace(report: SimReport, path: str | os.PathLike[str]) -> None:
    """Writes the report as a Chrome/Perfetto trace (open in ui.perfetto.dev), atomically."""
    doc = {
        "traceEvents": trace_events(report),
        "displayTimeUnit": "ns",
        "otherData": _jsonable(
            {
                "device": report.device.get("name"),
                "clock_ghz": report.device.get("clock_ghz"),
                "timing_only": report.timing_only,
            }
        ),
    }
    write_atomic(path, json.dumps(doc, allow_nan=False))


# --------------------------------------------------------------------------------------------
# Roofline plot
# --------------------------------------------------------------------------------------------


def plot_roofline(report: SimReport, path: str | os.PathLike[str]) -> None:
    """Writes a log-log roofline PNG: one point per (op, location), the roof of each dtype."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("the roofline plot needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    clock = _clock_hz(report)
    rows = report.by_op()
    total = sum(r["cycles"] for r in rows)
    points = []
    for r in rows:
        hbm = r["bytes"].get("hbm", 0.0)
        if r["flops"] <= 0 or hbm <= 0 or r["cycles"] <= 0 or clock <= 0:
            continue
        points.append((r, r["flops"] / hbm, r["flops"] / (r["cycles"] / clock)))

    fig = Figure(figsize=(9, 6), dpi=100)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")

    bw = _num(report.device.get("hbm_bandwidth"))
    peaks = {dt: _num(p) for dt, p in (report.device.get("peak_flops") or {}).items()}
    peaks = {dt: p for dt, p in peaks.items() if p > 0}
    xs = [p[1] for p in points] + ([p / bw for p in peaks.values()] if bw else [])
    lo, hi = (min(xs) / 10, max(xs) * 10) if xs else (0.1, 1e4)
    if bw:
        grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        for dt, peak in sorted(peaks.items(), key=lambda kv: kv[1]):
            ax.plot(grid, [min(peak, x * bw) for x in grid], label=f"{dt} roof")

    for bound in dict.fromkeys(p[0]["bound"] for p in points):
        sel = [p for p in points if p[0]["bound"] == bound]
        ax.scatter(
            [p[1] for p in sel],
            [p[2] for p in sel],
            s=[20 + 600 * (p[0]["cycles"] / total) for p in sel],
            c=_BOUND_COLORS.get(bound, "tab:green"),
            alpha=0.7,
            edgecolors="black",
            linewidths=0.5,
        )
    for r, x, y in sorted(points, key=lambda p: -p[0]["cycles"])[:5]:
        ax.annotate(r["op"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if not points:
        ax.text(
            0.5, 0.5, "no op with FLOPs, HBM bytes and cycles", transform=ax.transAxes, ha="center"
        )

    handles, _ = ax.get_legend_handles_labels()
    for bound in dict.fromkeys(p[0]["bound"] for p in points):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                label=f"{bound}-bound",
                markerfacecolor=_BOUND_COLORS.get(bound, "tab:green"),
                markeredgecolor="black",
            )
        )
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP per HBM byte)")
    ax.set_ylabel("achieved FLOP/s")
    ax.set_title(f"Roofline: {report.device.get('name', 'device')} (point size: share of cycles)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
