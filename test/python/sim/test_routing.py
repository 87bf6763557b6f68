"""Routing-aware MoE cost: the grouped expert matmuls cost the experts a call routes to.

A functional run costs the rows each expert actually got; a timing-only compile draws a call
from a distribution (uniform, Zipf, or a histogram recorded by a functional run); dispatch
and combine move a token once per destination chip, in the dtype the experts read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import mlacc
from mlacc.model_input import builtin_model
from mlacc.runtime.errors import InputError
from mlacc.runtime.sim.routing import (
    RoutingRecorder,
    RoutingSpec,
    parse_routing,
    sample_rows,
)
from mlacc.runtime.synthetic import synthetic_inputs


def _grouped(report) -> list:
    return [k for c in report.calls for k in c.kernels if k.op == "moe.grouped_matmul"]


def _timing_only_prefill(routing: str, tokens: int = 256) -> list:
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(1, tokens, dtype=torch.int64)
    art = mlacc.compile(
        model,
        (ids,),
        target="sim",
        timing_only=True,
        cache_len=tokens,
        device="h100-like",
        routing=routing,
    )
    exe = art.load()
    exe.run("prefill", *synthetic_inputs(exe.entry_points["prefill"]["inputs"], meta=True))
    return _grouped(exe.report())


def test_skewed_routing_costs_differently_from_uniform() -> None:
    """Zipf-skewed routing sends the tokens to fewer experts than uniform routing: fewer
    expert weights are read, and the hot experts' rows stretch the busiest cores."""
    uniform = _timing_only_prefill("uniform", tokens=8)
    skewed = _timing_only_prefill("zipf:3", tokens=8)
    assert len(uniform) == len(skewed) > 0
    assert sum(k.bytes["hbm"] for k in skewed) < sum(k.bytes["hbm"] for k in uniform)
    assert sum(k.cycles for k in skewed) != sum(k.cycles for k in uniform)


def test_sampled_routing_keeps_every_assignment() -> None:
    """A drawn call routes top_k distinct experts per token and every token to each shared
    expert; rows are padded to the dispatch block."""
    for spec in (RoutingSpec(), parse_routing("zipf:1.5")):
        rows = sample_rows(spec, 3, tokens=100, top_k=8, routed=64, shared=1, block=16)
        assert len(rows) == 65
        assert all(r % 16 == 0 for r in rows)
        assert rows[-1] == 112  # 100 tokens padded to 16
        assert 800 <= sum(rows[:64]) <= 800 + 64 * 15
    uniform = sample_rows(RoutingSpec(), 3, tokens=4, top_k=8, routed=256, shared=0, block=1)
    skewed = sample_rows(
        parse_routing("zipf:2"), 3, tokens=4, top_k=8, routed=256, shared=0, block=1
    )
    assert sum(r > 0 for r in skewed) <= sum(r > 0 for r in uniform)


def test_functional_run_costs_the_rows_it_routed(tmp_path: Path) -> None:
    """A functional run's grouped matmuls cost the block-padded rows each expert got in that
    call (recorded alongside), not an expected-coverage formula; the recorded histogram
    drives a later timing-only compile."""
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(0))
    exe = mlacc.compile(model, (ids,), target="sim", device="h100-like", cache_len=16).load()
    recorder = exe.executor.interpreter.recorder = RoutingRecorder()
    exe.run("forward", ids)
    kernels = _grouped(exe.report())
    assert kernels and recorder.layers
    # every grouped matmul of a layer reads that layer's routed rows: its FLOPs are
    # 2 n k x (padded rows) for the rows the dispatch produced
    for layer, counts in recorder.layers.items():
        padded = sum(math.ceil(c / 16) * 16 for c in counts)
        for k in (k for k in kernels if k.layer == layer):
            assert k.flops % padded == 0, (k.flops, padded)
    path = tmp_path / "routing.json"
    recorder.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "mlacc-routing/1" and data["layers"]
    spec = parse_routing(str(path))
    assert spec.kind == "histogram"
    assert _timing_only_prefill(str(path), tokens=8)


def test_bad_routing_specs_are_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    for spec in ("zipf:0", "zipf:x", str(tmp_path / "missing.json"), str(bad)):
        with pytest.raises(InputError):
            parse_routing(spec)


def _dispatch_link(fp8: bool) -> float:
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(4, 8, dtype=torch.int64)
    art = mlacc.compile(
        model,
        (ids,),
        target="sim",
        timing_only=True,
        fp8=fp8,
        cache_len=16,
        device="datacenter-npu",
        fp8_fallback="bf16",
    )
    exe = art.load()
    exe.run("prefill", *synthetic_inputs(exe.entry_points["prefill"]["inputs"], meta=True))
    return sum(
        k.bytes["link"] for c in exe.report().calls for k in c.kernels if k.op == "moe.dispatch"
    )


def test_dispatch_sends_once_per_chip_in_the_experts_dtype() -> None:
    """On 8 chips, a token routed to 2 experts goes to 8 (1 - (7/8)^2) - its own share =
    7 (1 - (7/8)^2) remote chips on average, not once per expert; under FP8 the rows travel
    as e4m3 values + scales (the tiny model is fp32: about a quarter of its bytes)."""
    bf16 = _dispatch_link(False)
    fp8 = _dispatch_link(True)
    assert 0 < fp8 < 0.3 * bf16


def test_grouped_tiles_cover_a_dispatch_block() -> None:
    """Decode routes a few rows per expert, padded to the dispatch block: the tiles are one
    block tall, so each expert's weights stream through the L2 once, not once per row tile."""
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(8, 4, dtype=torch.int64)
    art = mlacc.compile(
        model, (ids,), target="sim", timing_only=True, cache_len=64, device="h100-like"
    )
    exe = art.load()
    exe.run("decode", *synthetic_inputs(exe.entry_points["decode"]["inputs"], meta=True))
    kernels = _grouped(exe.report())
    assert kernels
    for k in kernels:
        assert k.bytes["l2"] <= 2.5 * k.bytes["hbm"], (k.bytes["l2"], k.bytes["hbm"])


def _link_bytes(routing: str) -> float:
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(8, 16, dtype=torch.int64)
    art = mlacc.compile(
        model,
        (ids,),
        target="sim",
        timing_only=True,
        cache_len=16,
        device="datacenter-npu",
        routing=routing,
    )
    exe = art.load()
    exe.run("prefill", *synthetic_inputs(exe.entry_points["prefill"]["inputs"], meta=True))
    return sum(
        k.bytes["link"]
        for c in exe.report().calls
        for k in c.kernels
        if k.op in ("moe.dispatch", "moe.combine")
    )


def test_skewed_routing_loads_the_hot_chips_link() -> None:
    """With the hot experts on a few of the 8 chips, their links carry more than uniform
    spreading says: the dispatch/combine link traffic of the busiest chip grows."""
    assert _link_bytes("zipf:2") > 1.2 * _link_bytes("uniform")
