#!/usr/bin/env python3
"""MoE, FP8 GEMM and RMSNorm kernels of the `triton` target against PyTorch and the roof.

    .venv/bin/python benchmarks/triton_moe.py            # GPU: DeepSeek-V3 shapes
    .venv/bin/python benchmarks/triton_moe.py --small    # tiny shapes (interpreter on CPU)

MoE layer (256 experts, top-8, dim 7168, inter 2048, bf16) for 1..4096 tokens: dispatch +
fused gate/up/SwiGLU grouped GEMM + weighted down GEMM + combine, against the per-expert loop
(`moe.experts` semantics, eager) and `torch.compile` of it; roof = bytes of the experts'
weights that the routing touches / measured copy bandwidth. FP8 block GEMM (M x 7168 x 2048):
roof = FLOPs / measured bf16 matmul peak. RMSNorm (rows x 7168): roof = bytes / copy bandwidth.
Without a CUDA device everything runs under TRITON_INTERPRET=1 at tiny shapes and
`torch.compile` is skipped: the harness runs end to end, the numbers mean nothing.
Prints one JSON object, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch

HAS_GPU = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in ("", "0")
if not HAS_GPU:
    os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are imported

from mlacc.runtime.semantics import fp8 as sem_fp8  # noqa: E402
from mlacc.runtime.semantics import moe as sem_moe  # noqa: E402
from mlacc.runtime.triton import fp8, moe, rmsnorm, router  # noqa: E402

DEV = torch.device("cuda" if HAS_GPU else "cpu")


def timed(fn: Callable[[], Any], reps: int) -> float:
    """Median seconds per call (CUDA events on a GPU)."""
    fn()
    times = []
    for _ in range(reps):
        if HAS_GPU:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if HAS_GPU:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def copy_bandwidth(reps: int) -> float:
    """Bytes read + written per second of a large device copy."""
    n = (1 << 28) if HAS_GPU else (1 << 20)
    a = torch.empty(n, dtype=torch.uint8, device=DEV)
    b = torch.empty_like(a)
    return 2 * n / timed(lambda: b.copy_(a), reps)


def matmul_peak(reps: int) -> float:
    n = 8192 if HAS_GPU else 256
    dtype = torch.bfloat16 if HAS_GPU else torch.float32
    a = torch.randn(n, n, device=DEV, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ a, reps)


# Wall-clock time (time.monotonic) after which no torch.compile baseline is started (set by
# benchmarks/gpu_suite.py to keep the whole suite within its budget); None: no limit.
COMPILE_DEADLINE: float | None = None


_COMPILED: dict[Callable, Callable] = {}


def maybe_compile(fn: Callable) -> Callable | None:
    """torch.compile of `fn` on a GPU, made once per function (shapes dynamic: one compile
    serves every size); None on the CPU or, for a first compile, past COMPILE_DEADLINE."""
    if not HAS_GPU:
        return None
    if fn not in _COMPILED:
        if COMPILE_DEADLINE is not None and time.monotonic() > COMPILE_DEADLINE:
            return None
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def eager_moe(x, gate, bias, w1, w3, w2, rk):
    """The MoE layer as the ops' semantics (the public code's per-expert loop)."""
    wts, idx = sem_moe.router(x, gate, bias, **rk)
    return sem_moe.experts(x, wts, idx, w1, w3, w2)


def moe_weights(cfg: dict[str, int]) -> dict[str, torch.Tensor]:
    """Router and expert weights at `cfg`'s shapes, drawn on the device (a CPU draw of V3's
    11 G expert values would take minutes)."""
    e, d, inter = cfg["experts"], cfg["dim"], cfg["inter"]
    dtype = torch.bfloat16
    g = torch.Generator(device=DEV).manual_seed(0)

    def r(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=DEV).mul_(scale)

    w1 = r(e, inter, d, scale=0.02).to(dtype)
    w3 = r(e, inter, d, scale=0.02).to(dtype)
    return {
        "gate": r(e, d, scale=0.05),
        "bias": r(e, scale=0.01),
        "w13": torch.cat([w1, w3], 1),
        "w2": r(e, d, inter, scale=0.02).to(dtype),
    }


def moe_case(
    tokens: int, cfg: dict[str, int], reps: int, bw: float, weights: dict | None = None
) -> dict[str, Any]:
    e, k, d, inter = cfg["experts"], cfg["top_k"], cfg["dim"], cfg["inter"]
    dtype = torch.bfloat16
    weights = weights or moe_weights(cfg)
    gate, bias, w13, w2 = weights["gate"], weights["bias"], weights["w13"], weights["w2"]
    w1, w3 = w13[:, :inter], w13[:, inter:]
    x = torch.randn(tokens, d, generator=torch.Generator().manual_seed(tokens)).to(dtype).to(DEV)
    rk = dict(
        score_func="sigmoid",
        top_k=k,
        n_groups=cfg["groups"],
        topk_group=cfg["topk_group"],
        group_score="top2_sum",
        route_scale=2.5,
        norm_topk_prob=True,
    )

    def triton_layer() -> torch.Tensor:
        wts, idx = router.router(x, gate, bias, **rk)
        xs, row_of, off = moe.dispatch(x, idx, num_experts=e, block_size=16)
        h = moe.grouped_matmul_swiglu(xs, w13, off)
        y = moe.grouped_matmul_weighted(h, w2, off, row_of, wts)
        return moe.combine_weighted(y, row_of, out_dtype="bfloat16")

    def eager_layer() -> torch.Tensor:
        return eager_moe(x, gate, bias, w1, w3, w2, rk)

    _, idx = sem_moe.router(x, gate, bias, **rk)
    touched = int(idx.unique().numel())
    weight_bytes = touched * 3 * inter * d * 2
    out = {
        "kernel": "moe_layer",
        "tokens": tokens,
        "experts_touched": touched,
        "triton_s": timed(triton_layer, reps),
        "eager_s": timed(eager_layer, max(1, reps // 2)),
    }
    compiled = maybe_compile(eager_moe)
    run = (lambda: compiled(x, gate, bias, w1, w3, w2, rk)) if compiled else None
    out["compile_s"] = timed(run, reps) if run else None
    out["roof_s"] = weight_bytes / bw
    out["weights_TBps"] = weight_bytes / out["triton_s"] / 1e12
    return out


def fp8_case(m: int, n: int, k: int, reps: int, peak: float) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(m, k, generator=g).to(DEV)
    w = torch.randn(n, k, generator=g).to(DEV)
    xq, xs = sem_fp8.quantize(x, block_shape=[128], pow2_scale=False)
    wq, ws = sem_fp8.quantize(w, block_shape=[128, 128], pow2_scale=False)
    attrs = {"block_n": 128, "block_k": 128, "out_dtype": "bfloat16"}
    out = {
        "kernel": "fp8_matmul",
        "tokens": m,
        "triton_s": timed(lambda: fp8.matmul(xq, xs, wq, ws, **attrs), reps),
        "eager_s": timed(lambda: sem_fp8.matmul(xq, xs, wq, ws, **attrs), reps),
    }
    compiled = maybe_compile(sem_fp8.matmul)
    run = (lambda: compiled(xq, xs, wq, ws, **attrs)) if compiled else None
    out["compile_s"] = timed(run, reps) if run else None
    out["roof_s"] = 2 * m * n * k / peak
    out["TFLOPs"] = 2 * m * n * k / out["triton_s"] / 1e12
    return out


def rms_case(rows: int, d: int, reps: int, bw: float) -> dict[str, Any]:
    x = torch.randn(rows, d, device=DEV).to(torch.bfloat16)
    w = torch.randn(d, device=DEV)
    from mlacc.runtime.semantics import mla as sem_mla

    out = {
        "kernel": "rms_norm",
        "tokens": rows,
        "triton_s": timed(lambda: rmsnorm.rms_norm(x, w, eps=1e-6), reps),
        "eager_s": timed(lambda: sem_mla.rms_norm(x, w, eps=1e-6), reps),
    }
    compiled = maybe_compile(sem_mla.rms_norm)
    run = (lambda: compiled(x, w, eps=1e-6)) if compiled else None
    out["compile_s"] = timed(run, reps) if run else None
    out["roof_s"] = 2 * rows * d * 2 / bw
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="tiny shapes (implied without a GPU)")
    args = p.parse_args()
    small = args.small or not HAS_GPU
    reps = 2 if small else 10
    if small:
        cfg = {"experts": 16, "top_k": 4, "dim": 64, "inter": 32, "groups": 4, "topk_group": 2}
        tokens, fp8_shapes, rms_rows = [1, 16], [(16, 256, 256)], [16]
    else:
        cfg = {"experts": 256, "top_k": 8, "dim": 7168, "inter": 2048, "groups": 8, "topk_group": 4}
        tokens = [1, 8, 32, 128, 512, 4096]
        fp8_shapes = [(m, 2048, 7168) for m in (128, 1024, 4096)]
        rms_rows = [1, 128, 4096]
    bw, peak = copy_bandwidth(reps), matmul_peak(reps)
    weights = moe_weights(cfg)
    rows = [moe_case(t, cfg, reps, bw, weights) for t in tokens]
    rows += [fp8_case(m, n, k, reps, peak) for m, n, k in fp8_shapes]
    rows += [rms_case(r, cfg["dim"], reps, bw) for r in rms_rows]
    for r in rows:
        r["roof_pct"] = 100 * r["roof_s"] / r["triton_s"]
    report = {
        "device": torch.cuda.get_device_name() if HAS_GPU else "cpu (Triton interpreter)",
        "copy_bandwidth_TBps": bw / 1e12,
        "matmul_peak_TFLOPs": peak / 1e12,
        "small": small,
        "results": rows,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\n{'kernel':<12}{'tokens':>7}{'triton ms':>11}{'eager ms':>10}{'compile ms':>11}"
        f"{'roof %':>8}"
    )
    for r in rows:
        comp = f"{r['compile_s'] * 1e3:>11.3f}" if r["compile_s"] else f"{'-':>11}"
        print(
            f"{r['kernel']:<12}{r['tokens']:>7}{r['triton_s'] * 1e3:>11.3f}"
            f"{r['eager_s'] * 1e3:>10.3f}{comp}{r['roof_pct']:>8.1f}"
        )


if __name__ == "__main__":
    main()
