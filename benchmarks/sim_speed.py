#!/usr/bin/env python3
"""Simulator speed: how fast the `sim` target computes and times DeepSeek models.

    .venv/bin/python benchmarks/sim_speed.py [--device datacenter-npu] [--skip-full]

Two workloads, measured side by side with the obvious alternative in one run:

* ``deepseek-v3-tiny``: prefill of 8 tokens + 16 decode steps (``generate``) on ``sim`` —
  numerics and timing — against the same ``generate`` on the ``reference`` target (numerics
  only). The issue's bar: under 5 s.
* ``deepseek-v3`` (671B shapes, meta weights): compile timing-only, then simulate one decode
  step of all 61 layers at batch 64, context 4096 (bar: under 20 s for both), and simulate
  one 4096-token prefill (bar: under 10 s).

Prints one JSON object and a table: wall seconds, simulated kernels per wall second, and the
simulated time per token / tokens per second on the device.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

import mlacc
from mlacc.model_input import builtin_model
from mlacc.runtime.synthetic import synthetic_inputs


def tiny(device: str) -> dict[str, Any]:
    model = builtin_model("deepseek-v3-tiny")
    prompt = torch.randint(
        0, model.config.vocab_size, (1, 8), generator=torch.Generator().manual_seed(0)
    )
    out: dict[str, Any] = {}
    for target in ("reference", "sim"):
        options = {"device": device} if target == "sim" else {}
        exe = mlacc.compile(model, (prompt,), target=target, cache_len=32, **options).load()
        exe.generate(prompt, 2)  # warm up (first-call allocations)
        if target == "sim":
            exe.executor.report = exe.executor.new_report()
        start = time.perf_counter()
        tokens = exe.generate(prompt, 17)  # prefill + 16 decode steps
        out[f"{target}_wall_s"] = time.perf_counter() - start
        out[f"{target}_tokens"] = tokens[0, 8:].tolist()
    report = exe.report()
    kernels = sum(len(c.kernels) for c in report.calls)
    out.update(
        kernels=kernels,
        kernels_per_wall_s=kernels / out["sim_wall_s"],
        sim_over_reference=out["sim_wall_s"] / out["reference_wall_s"],
        same_tokens=out.pop("sim_tokens") == out.pop("reference_tokens"),
        simulated_us_per_token=report.time_per_token() * 1e6,
        simulated_tokens_per_s=report.tokens_per_second(),
    )
    return out


def _timed_call(device: str, batch: int, prompt_len: int, entry: str) -> tuple[float, float, Any]:
    """(compile s, simulate s, the executable) of one timing-only call of `entry`."""
    start = time.perf_counter()
    art = mlacc.compile(
        "deepseek-v3",
        (torch.zeros(batch, prompt_len, dtype=torch.int64, device="meta"),),
        target="sim",
        timing_only=True,
        cache_len=4096,
        device=device,
    )
    compile_s = time.perf_counter() - start
    exe = art.load()
    inputs = synthetic_inputs(exe.entry_points[entry]["inputs"], meta=True)
    start = time.perf_counter()
    exe.run(entry, *inputs)
    return compile_s, time.perf_counter() - start, exe


def full_size(device: str) -> dict[str, Any]:
    compile_s, simulate_s, exe = _timed_call(device, 64, 16, "decode")
    report = exe.report()
    totals = report.totals()
    _, prefill_s, prefill = _timed_call(device, 1, 4096, "prefill")
    return {
        "compile_s": compile_s,
        "simulate_s": simulate_s,
        "total_s": compile_s + simulate_s,
        "prefill_4096_simulate_s": prefill_s,
        "prefill_4096_simulated_s": prefill.report().seconds(),
        "kernels": totals.kernels,
        "kernels_per_wall_s": totals.kernels / simulate_s,
        "simulated_ms_per_step": report.time_per_token() * 1e3,
        "simulated_tokens_per_s": report.tokens_per_second(),
        "hbm_tb": totals.bytes["hbm"] / 1e12,
        "energy_j": totals.energy_pj / 1e12,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="datacenter-npu")
    parser.add_argument("--skip-full", action="store_true", help="only the tiny model")
    args = parser.parse_args()
    torch.manual_seed(0)
    result: dict[str, Any] = {
        "machine": {"cpu_count": torch.get_num_threads(), "python": platform.python_version()},
        "device": args.device,
        "tiny": tiny(args.device),
    }
    if not args.skip_full:
        result["full_size"] = full_size(args.device)
    print(json.dumps(result, indent=1))
    t = result["tiny"]
    print(f"\n{'workload':44s} {'wall s':>8s} {'bar':>6s} {'kernels/s':>10s} {'vs reference':>13s}")
    print(
        f"{'v3-tiny prefill + 16 decode (sim)':44s} {t['sim_wall_s']:8.2f} {'5':>6s} "
        f"{t['kernels_per_wall_s']:10.0f} {t['sim_over_reference']:12.2f}x"
    )
    print(f"{'v3-tiny prefill + 16 decode (reference)':44s} {t['reference_wall_s']:8.2f}")
    if "full_size" in result:
        f = result["full_size"]
        print(
            f"{'deepseek-v3 decode b64 ctx4096: compile':44s} {f['compile_s']:8.2f}\n"
            f"{'deepseek-v3 decode b64 ctx4096: simulate':44s} {f['simulate_s']:8.2f} "
            f"{'':>6s} {f['kernels_per_wall_s']:10.0f}\n"
            f"{'deepseek-v3 decode b64 ctx4096: total':44s} {f['total_s']:8.2f} {'20':>6s}\n"
            f"{'deepseek-v3 prefill 1x4096: simulate':44s} {f['prefill_4096_simulate_s']:8.2f} "
            f"{'10':>6s}"
        )
        print(
            f"\nsimulated on {args.device}: v3 decode step {f['simulated_ms_per_step']:.1f} ms, "
            f"{f['simulated_tokens_per_s']:,.0f} tokens/s at batch 64, {f['hbm_tb']:.2f} TB HBM, "
            f"{f['energy_j']:.1f} J"
        )


if __name__ == "__main__":
    main()
