"""The simulator against what hardware does: tiles that reuse data, caches, achievable rates,
shared bandwidth, static power (issue: prefill, large GEMMs and MoE routing right)."""

from __future__ import annotations

import pytest
import torch

import mlacc
from mlacc.backends.sim.lowering import resolve_device
from mlacc.backends.sim.tiling import AttentionWork, MatmulWork, tile_attention, tile_matmul
from mlacc.model_input import builtin_model
from mlacc.runtime.sim.engine import CallTimeline, simulate_kernel

# DeepSeek-V3's un-absorbed prefill attention: one (sequence, head) at a time, q/k 192, v 128
V3_PREFILL = AttentionWork(
    batch=128, q_len=4096, heads=1, kv_len=4096, k_dim=192, v_dim=128,
    entry_bytes=(128 + 64 + 128) * 2, elt_bytes=2, dtype="bf16", context_arg=0,
)  # fmt: skip


def _fraction_of_peak(m: int, n: int, k: int, device: str) -> float:
    d = resolve_device(device)
    schedule = tile_matmul(MatmulWork(1, m, n, k, 2, 2, 2, "bf16"), d, "mm")
    seconds = d.seconds(simulate_kernel(schedule, d).cycles)
    return 2.0 * m * n * k / seconds / d.peak_flops("bf16")


def test_prefill_attention_reads_each_heads_cache_once() -> None:
    """Query blocks of many rows share each cache tile, and a head's K/V (2.6 MB) stays in the
    L2 while its blocks run: HBM sees each (sequence, head)'s cache once, not once per query
    row (which was 688 GB per layer)."""
    device = resolve_device("h100-like")
    s = tile_attention(V3_PREFILL, device, "attn")
    query_block = V3_PREFILL.q_len - s.context.causal_span
    assert query_block >= 16
    once = V3_PREFILL.batch * V3_PREFILL.kv_len * V3_PREFILL.entry_bytes
    assert s.context.stream_bytes <= once
    assert s.hbm_bytes < 2 * once + 2 * 128 * 4096 * 192 * 2  # + queries and outputs


def test_without_an_l2_the_cache_is_read_per_query_block() -> None:
    """The same attention on a device without an L2 pays a cache read per query block."""
    device = resolve_device("datacenter-npu")
    s = tile_attention(V3_PREFILL, device, "attn")
    blocks = V3_PREFILL.q_len // (V3_PREFILL.q_len - s.context.causal_span)
    once = V3_PREFILL.batch * V3_PREFILL.kv_len * V3_PREFILL.entry_bytes
    assert s.context.stream_bytes > 0.4 * blocks * once


@pytest.mark.parametrize("shape", [(16384, 24576, 1536), (16384, 16384, 16384), (8192,) * 3])
def test_large_gemms_land_where_cublas_does(shape: tuple[int, int, int]) -> None:
    """h100-like: 75-85% of the bf16 peak for large GEMMs (cuBLAS: ~75-80%); the L2 keeps the
    operand panels of a wave of tiles, so HBM traffic does not grow with the square of the
    working set."""
    assert 0.75 <= _fraction_of_peak(*shape, "h100-like") <= 0.85


def test_a_full_call_never_moves_more_than_the_chip_bandwidth() -> None:
    """Kernels that overlap share HBM both ways: a decode step's HBM bytes over its time stay
    under the achievable bandwidth on every preset."""
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(4, 8, dtype=torch.int64)
    for device in ("h100-like", "datacenter-npu", "edge-npu", "h200-like"):
        exe = mlacc.compile(model, (ids,), target="sim", device=device, cache_len=64).load()
        exe.generate(ids, 3)
        report = exe.report()
        for call in report.calls:
            moved = sum(k.bytes["hbm"] for k in call.kernels)
            assert moved / report.seconds(call.cycles) <= report.device["hbm_achievable_bandwidth"]


def test_hbm_is_served_one_kernel_after_the_other() -> None:
    """Two memory-bound kernels started together end no sooner than their bytes allow."""
    device = resolve_device("h100-like")
    s = tile_matmul(MatmulWork(1, 4, 7168, 16384, 2, 2, 2, "bf16"), device, "mm")
    timeline = CallTimeline(device)
    first = timeline.hbm_end(0.0, s)
    second = timeline.hbm_end(0.0, s)
    assert second == pytest.approx(2 * first)
    assert first >= s.hbm_bytes / device.hbm_achievable_per_cycle


def test_static_power_is_charged_for_the_whole_call() -> None:
    """A call's energy includes the chips' static power over its duration: an H100-class
    part averages hundreds of watts in decode, not ~100 W of switching alone."""
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(1, 8, dtype=torch.int64)
    exe = mlacc.compile(model, (ids,), target="sim", device="h100-like", cache_len=64).load()
    exe.generate(ids, 2)
    report = exe.report()
    call = report.calls[-1]
    dynamic = sum(k.energy_pj for k in call.kernels)
    seconds = report.seconds(call.cycles)
    assert call.static_energy_pj == pytest.approx(250.0 * seconds * 1e12)
    totals = report.totals(call.entry)
    assert totals.energy_pj >= dynamic + call.static_energy_pj - 1e-6
    assert call.static_energy_pj / 1e12 / seconds >= 250.0 - 1e-6
