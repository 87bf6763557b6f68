"""Renderers of a simulation report: table, JSON, Chrome trace, roofline plot."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlacc.runtime.sim.records import CallRecord, KernelTiming, SimReport, TraceEvent
from mlacc.runtime.sim.report import format_table, plot_roofline, report_to_json, write_trace

DEVICE = {
    "name": "toy-sim",
    "description": "a toy device",
    "clock_ghz": 2.0,
    "chips": 2,
    "cores": 4,
    "sram_bytes": 1 << 20,
    "hbm_bandwidth": 1e12,
    "hbm_latency_s": 1e-7,
    "hbm_capacity_bytes": 80e9,
    "link_bandwidth": None,
    "peak_flops": {"bf16": 1e14, "fp8": 2e14},
    "vector_ops_per_s": 1e13,
}


def _kernel(
    op: str, layer: int | None, start: float, end: float, flops: float, hbm: float, bound: str
) -> KernelTiming:
    return KernelTiming(
        op=op,
        location=f"model.py:{len(op)}",
        layer=layer,
        start=start,
        end=end,
        flops=flops,
        bytes={"hbm": hbm, "sram": 2 * hbm, "link": 0.0},
        busy={"tensor": end - start, "vector": (end - start) / 2, "dma": 100.0, "link": 0.0},
        cores=8,
        roofline_cycles=(end - start) / 2,
        bound=bound,
        sram_peak=1000 * (1 + (layer or 0)),
        energy_pj=10.0 * (end - start),
        dtype="bf16",
    )


def _call(entry: str, tokens: int, start: float, scale: float) -> CallRecord:
    kernels = []
    t = 0.0
    for layer in (0, 1):
        kernels.append(
            _kernel("mla.latent_attention", layer, t, t + 1000 * scale, 1e6, 4e3, "compute")
        )
        t += 1000 * scale
        kernels.append(_kernel("moe.experts", layer, t, t + 2000 * scale, 2e6, 2e4, "memory"))
        t += 2000 * scale
    kernels.append(_kernel("core.lm_head", None, t, t + 500 * scale, 5e5, 1e4, "memory"))
    events = [
        TraceEvent("core 0 / tensor", "matmul", start + 10, 50, {"m": 8}),
        TraceEvent("core 10 / dma", "load", start, 30),
        TraceEvent("core 2 / dma", "load", start + 5, 20),
    ]
    return CallRecord(entry, batch=2, tokens=tokens, start=start, kernels=kernels, events=events)


@pytest.fixture
def report() -> SimReport:
    prefill = _call("prefill", 8, 0.0, 1.0)  # 6500 cycles
    decode = _call("decode", 1, 6500.0, 0.1)  # 650 cycles
    kv = {
        "values_per_token_per_layer": 576,
        "mha_values_per_token_per_layer": 40960,
        "bytes_per_token": 1152 * 2,
        "layers": 2,
        "dtype": "bfloat16",
        "bytes": 2304 * 2 * 64,
        "batch": 2,
        "context": 64,
    }
    return SimReport(device=dict(DEVICE), calls=[prefill, decode], kv_cache=kv)


def _empty_reports() -> list[SimReport]:
    zero = KernelTiming("core.noop", "", None, 0.0, 0.0, 0.0, {}, {}, 0, 0.0, "latency", 0, 0.0)
    return [
        SimReport(device=dict(DEVICE)),
        SimReport(device={"name": "bare"}),
        SimReport(device=dict(DEVICE), calls=[CallRecord("decode", 1, 1, 0.0, [zero])]),
        SimReport(device=dict(DEVICE), calls=[CallRecord("forward", 1, 4, 0.0, [])]),
    ]


# ---------------------------------------------------------------- table


def test_table_has_device_ops_layers_and_tokens_per_second(report: SimReport) -> None:
    text = format_table(report)
    assert "toy-sim" in text
    assert "mla.latent_attention" in text and "moe.experts" in text and "core.lm_head" in text
    # decode: 650 cycles at 2 GHz = 325 ns for batch 2 x 1 token
    tps = 2 / (650 / 2e9)
    assert report.tokens_per_second() == pytest.approx(tps)
    assert f"{tps:,.1f}" in text  # "6,153,846.2"
    assert "325 ns" in text
    layer_rows = [ln.split() for ln in text.splitlines() if ln.split()[:1] in (["0"], ["1"])]
    assert len(layer_rows) == 2
    assert any(ln.split()[:1] == ["-"] for ln in text.splitlines())  # the head row
    assert "576 latent values/token/layer vs 41.0K MHA" in text
    assert "utilization" in text and "busy cycles" in text


def test_table_columns_are_aligned(report: SimReport) -> None:
    lines = format_table(report).splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("Top ")))
    header, rule = lines[start + 1], lines[start + 2]
    assert set(rule.replace(" ", "")) == {"-"}
    # every row of the ops table ends its "cycles" column where the header does
    end = header.index("cycles") + len("cycles")
    for row in lines[start + 3 : start + 6]:
        assert row[end - 1] != " " and (len(row) == end or row[end] == " ")


def test_table_top_limits_op_rows(report: SimReport) -> None:
    text = format_table(report, top=1)
    assert "Top 1 of 3 ops" in text


@pytest.mark.parametrize("empty", _empty_reports())
def test_table_and_json_survive_empty_reports(empty: SimReport) -> None:
    text = format_table(empty)
    assert empty.device["name"] in text
    json.dumps(report_to_json(empty), allow_nan=False)


def test_table_caps_layer_rows() -> None:
    kernels = [
        KernelTiming("op", "", i, i, i + 1, 1.0, {"hbm": 1.0}, {}, 1, 1.0, "memory", 0, 0.0)
        for i in range(100)
    ]
    report = SimReport(device=dict(DEVICE), calls=[CallRecord("forward", 1, 1, 0.0, kernels)])
    text = format_table(report)
    assert "30 more rows not shown" in text


# ---------------------------------------------------------------- JSON


def test_json_totals_match_hand_computed(report: SimReport) -> None:
    doc = report_to_json(report)
    json.dumps(doc, allow_nan=False)
    t = doc["totals"]
    assert t["cycles"] == pytest.approx(6500 + 650)
    assert t["seconds"] == pytest.approx(7150 / 2e9)
    assert t["flops"] == pytest.approx(2 * (2 * 1e6 + 2 * 2e6 + 5e5))
    assert t["bytes"]["hbm"] == pytest.approx(2 * (2 * 4e3 + 2 * 2e4 + 1e4))
    assert t["tokens_per_second"] == pytest.approx(2 / (650 / 2e9))
    assert t["time_per_token_s"] == pytest.approx(650 / 2e9)
    assert t["sram_peak"] == 2000
    # tensor busy = sum of kernel cycles; 8 engines (4 cores x 2 chips)
    assert t["utilization"]["tensor"] == pytest.approx(7150 / (7150 * 8))
    compute = 2 * 1000 + 2 * 100
    assert t["compute_bound_fraction"] == pytest.approx(compute / 7150)
    assert [c["entry"] for c in doc["calls"]] == ["prefill", "decode"]
    assert doc["calls"][1] == {
        "entry": "decode",
        "batch": 2,
        "tokens": 1,
        "start": 6500.0,
        "cycles": pytest.approx(650),
        "seconds": pytest.approx(650 / 2e9),
        "kernels": 5,
    }
    assert [r["layer"] for r in doc["layers"]] == [0, 1, None]
    assert doc["ops"][0]["op"] == "moe.experts"
    assert doc["kv_cache"]["values_per_token_per_layer"] == 576
    assert doc["device"]["name"] == "toy-sim"


def test_json_replaces_non_finite_numbers(report: SimReport) -> None:
    report.device["vector_ops_per_s"] = float("inf")
    report.calls[0].kernels[0].energy_pj = float("nan")
    doc = report_to_json(report)
    json.dumps(doc, allow_nan=False)
    assert doc["device"]["vector_ops_per_s"] is None


# ---------------------------------------------------------------- trace


def test_trace_events(report: SimReport, tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    write_trace(report, path)
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    assert {e["ph"] for e in events} == {"X", "M"}
    spans = [e for e in events if e["ph"] == "X"]
    for e in spans:
        assert {"pid", "tid", "ts", "dur", "name"} <= e.keys()
    # decode's first kernel: cycles 6500..6600 at 2 GHz -> 3.25 us, 0.05 us long
    decode_attn = next(
        e
        for e in spans
        if e["name"] == "mla.latent_attention" and e["args"]["layer"] == 0 and e["ts"] > 1
    )
    assert decode_attn["ts"] == pytest.approx(6500 / 2e9 * 1e6)
    assert decode_attn["dur"] == pytest.approx(100 / 2e9 * 1e6)
    assert decode_attn["args"]["bound"] == "compute"
    assert decode_attn["args"]["location"] == "model.py:20"
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"call 0: prefill", "call 1: decode", "core 0 / tensor", "core 10 / dma"} <= names
    assert any(e["name"] == "process_name" for e in events)
    assert any(e["name"] == "thread_sort_index" for e in events)
    # every TraceEvent is there, on its own track
    loads = [e for e in spans if e["name"] == "load"]
    assert len(loads) == 4
    assert {e["ts"] for e in loads} >= {0.0, 6500 / 2e9 * 1e6}


def test_trace_of_empty_report(tmp_path: Path) -> None:
    for i, empty in enumerate(_empty_reports()):
        write_trace(empty, tmp_path / f"t{i}.json")
        assert "traceEvents" in json.loads((tmp_path / f"t{i}.json").read_text())


# ---------------------------------------------------------------- plot


def test_roofline_png(report: SimReport, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "roof.png"
    plot_roofline(report, path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000
    plot_roofline(_empty_reports()[0], tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes().startswith(b"\x89PNG")


def test_roofline_without_matplotlib(
    report: SimReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_roofline(report, tmp_path / "roof.png")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- unwritable paths


def _writers() -> list:
    def plot(report: SimReport, path: Path) -> None:
        pytest.importorskip("matplotlib")
        plot_roofline(report, path)

    return [write_trace, plot]


@pytest.mark.parametrize("writer", _writers(), ids=["trace", "plot"])
def test_unwritable_path_raises_oserror(writer, report: SimReport, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        writer(report, blocker / "out")  # parent is a file
    with pytest.raises(OSError):
        writer(report, tmp_path / "missing" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("writer", _writers(), ids=["trace", "plot"])
def test_failed_rename_leaves_no_partial_file(
    writer, report: SimReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        writer(report, tmp_path / "out")
    assert not list(tmp_path.iterdir())


def test_fp8_weights_count_at_their_stored_size() -> None:
    """With --fp8 the memory report (and the simulator's capacity line) counts each quantized
    weight once, as e4m3 values plus fp32 scales: half the bytes of its bf16 form."""
    import mlacc
    from mlacc.model_input import builtin_model, default_args

    model = builtin_model("deepseek-v3-tiny").bfloat16()
    plain = mlacc.compile(model, default_args(model), target="sim", timing_only=True)
    fp8 = mlacc.compile(model, default_args(model), target="sim", timing_only=True, fp8=True)
    before = plain.manifest["memory"]["weight_bytes"]
    after = fp8.manifest["memory"]["weight_bytes"]
    kept_bf16 = after["bfloat16"]  # the embedding and LM head stay in bf16
    quantized_bf16 = before["bfloat16"] - kept_bf16
    assert after["float8_e4m3fn"] == quantized_bf16 // 2
    assert 0 < after["float32"] < quantized_bf16 / 1000  # one scale per 128 x 128 block
    total = sum(after.values())
    assert fp8.load().executor.new_report().weight_bytes == total
    assert total < 0.7 * before["bfloat16"]
