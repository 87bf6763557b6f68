#!/usr/bin/env python3
"""MLA attention kernels of the `triton` target against PyTorch and against the hardware roof.

    .venv/bin/python benchmarks/triton_attention.py            # GPU: DeepSeek-V3 shapes (< 2 min)
    .venv/bin/python benchmarks/triton_attention.py --small    # tiny shapes (interpreter on CPU)

Decode (`mla.latent_attention`, absorbed MLA, 128 heads, latent 512 + rope 64, bf16) for batch
{1, 32, 128} x context {1024, 4096, 16384}, full caches; causal prefill
(`mla.decoupled_attention`, q/k 192, v 128); the cache write with fused RoPE
(`mla.cache_update`), also with the kv norm fused (`triton.norm_cache_update`). Beside each
kernel: the same math in eager PyTorch (DeepSeek's public absorbed decode, SDPA for prefill,
index_put for the cache write, kv norm + cat before it) and under `torch.compile`,
and the roof measured in the same run: bytes / device-to-device copy bandwidth (bytes read +
written per second of a 1 GiB `copy_`) for decode and the cache write, FLOPs / bf16 8192^3
matmul throughput for prefill. `roof %` is roof time / kernel time.

Without a CUDA device the kernels run under TRITON_INTERPRET=1 at tiny shapes (`--small` is
implied) and `torch.compile` is skipped: the harness runs end to end, the numbers mean nothing.
Prints one JSON object, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

HAS_GPU = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in ("", "0")
if not HAS_GPU:
    os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are imported

import triton  # noqa: E402

from mlacc.runtime.semantics import rope as sem_rope  # noqa: E402
from mlacc.runtime.triton import attention as A  # noqa: E402

DEVICE = "cuda" if HAS_GPU else "cpu"
ROPE = {
    "layout": "interleaved",
    "theta": 10000.0,
    "factor": 1.0,
    "original_seq_len": 4096,
    "beta_fast": 32,
    "beta_slow": 1,
    "cos_sin_scale": 1.0,
    "truncate": True,
}


def _bench(fn: Callable[[], Any]) -> float:
    """Seconds per call: Triton's do_bench (L2 flushed between calls) on a GPU, one timed call
    after a warm-up call on the CPU."""
    if HAS_GPU:
        return triton.testing.do_bench(fn, warmup=10, rep=40) * 1e-3
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def copy_bandwidth() -> float:
    """Device-to-device copy bandwidth, bytes read + written per second (1 GiB buffers)."""
    n = (1 << 30) if HAS_GPU else (1 << 22)
    src = torch.empty(n, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    return 2 * n / _bench(lambda: dst.copy_(src))


def matmul_flops() -> float:
    """bf16 matmul throughput, FLOP/s (8192^3 on a GPU)."""
    n = 8192 if HAS_GPU else 256
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    return 2 * n**3 / _bench(lambda: a @ b)


# Wall-clock time (time.monotonic) after which no torch.compile baseline is started (set by
# benchmarks/gpu_suite.py to keep the whole suite within its budget); None: no limit.
COMPILE_DEADLINE: float | None = None
_COMPILED: dict[Callable, Callable] = {}


def _compiled(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor] | None:
    """torch.compile of `fn`, made once (dynamic shapes); None on the CPU or, for a first
    compile, past COMPILE_DEADLINE."""
    if not HAS_GPU:
        return None
    if fn not in _COMPILED:
        if COMPILE_DEADLINE is not None and time.monotonic() > COMPILE_DEADLINE:
            return None
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def eager_decode(q, q_pe, cache, scale, c):
    """DeepSeek's public absorbed decode (`inference/model.py`, MLA.forward, absorb branch)."""
    kv, pe = cache[..., :c], cache[..., c:]
    scores = torch.einsum("bshc,btc->bsht", q, kv) + torch.einsum("bshr,btr->bsht", q_pe, pe)
    scores = (scores * scale).softmax(dim=-1, dtype=torch.float32).type_as(q)
    return torch.einsum("bsht,btc->bshc", scores, kv)


def eager_prefill(q_nope, q_pe, k_nope, k_pe, v, scale):
    """The un-absorbed causal prefill through SDPA (k_pe broadcast over the heads)."""
    h = q_nope.shape[2]
    q = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)
    k_pe = k_pe[:, :, None, :].expand(-1, -1, h, -1)
    k = torch.cat([k_nope, k_pe], dim=-1).transpose(1, 2)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v.transpose(1, 2), is_causal=True, scale=scale
    )
    return out.transpose(1, 2)


def eager_cache_write(cache, entries, positions):
    batch = torch.arange(cache.shape[0], device=cache.device)[:, None].expand_as(positions)
    cache[batch, positions] = entries
    return cache


def eager_norm_cache_write(cache, kv, weight, positions, eps=1e-6):
    """DeepSeek's public decode before the absorbed attention: ``kv_norm`` of the latent
    channels, ``cat`` with the rotary ones, the cache write."""
    c = weight.shape[0]
    latent = kv[..., :c].float()
    latent = (latent * torch.rsqrt(latent.pow(2).mean(-1, keepdim=True) + eps)).type_as(kv)
    return eager_cache_write(cache, torch.cat([latent * weight, kv[..., c:]], -1), positions)


def _ratio(roof: float, t: float | None) -> float | None:
    return None if t is None else roof / t


def bench_decode(batch: int, context: int, shape: dict[str, int], bw: float) -> dict[str, Any]:
    h, c, dr = shape["heads"], shape["latent"], shape["rope"]
    bf16 = torch.bfloat16
    q = torch.randn(batch, 1, h, c, device=DEVICE, dtype=bf16)
    q_pe = torch.randn(batch, 1, h, dr, device=DEVICE, dtype=bf16)
    cache = torch.randn(batch, context, c + dr, device=DEVICE, dtype=bf16)
    positions = torch.full((batch, 1), context - 1, device=DEVICE, dtype=torch.int32)
    cos, sin = (t.to(DEVICE) for t in sem_rope.tables(ROPE, dr, context))
    scale = (c + dr) ** -0.5
    kw = {"kv_lora_rank": c, "softmax_scale": scale, "rope_layout": "interleaved"}
    ours = _bench(lambda: A.latent_attention(q, q_pe, cache, positions, cos, sin, **kw))
    block = 64
    m = context // block
    pool = cache.view(batch * m, block, c + dr)
    table = torch.arange(batch * m, device=DEVICE, dtype=torch.int32).view(batch, m)
    paged = _bench(lambda: A.latent_attention(q, q_pe, pool, positions, cos, sin, table, **kw))
    eager = _bench(lambda: eager_decode(q, q_pe, cache, scale, c))
    comp_fn = _compiled(eager_decode)
    comp = _bench(lambda: comp_fn(q, q_pe, cache, scale, c)) if comp_fn else None
    nbytes = cache.numel() * 2 + q.numel() * 4 + q_pe.numel() * 2  # cache, q + ctx, q_pe
    roof = nbytes / bw
    config = A.latent_config(batch, h, context, c, (c + dr) * 2)
    return {
        "op": "decode",
        "batch": batch,
        "context": context,
        "config": config.__dict__,
        "bytes": nbytes,
        "t_triton_s": ours,
        "t_triton_paged_s": paged,
        "t_eager_s": eager,
        "t_compile_s": comp,
        "roof_s": roof,
        "roof_triton": _ratio(roof, ours),
        "roof_triton_paged": _ratio(roof, paged),
        "roof_eager": _ratio(roof, eager),
        "roof_compile": _ratio(roof, comp),
    }


def bench_prefill(tokens: int, shape: dict[str, int], peak: float) -> dict[str, Any]:
    h, dn, dr, dv = shape["heads"], shape["nope"], shape["rope"], shape["value"]
    bf16 = torch.bfloat16

    def r(*s: int) -> torch.Tensor:
        return torch.randn(*s, device=DEVICE, dtype=bf16)

    q_nope, q_pe = r(1, tokens, h, dn), r(1, tokens, h, dr)
    k_nope, k_pe, v = r(1, tokens, h, dn), r(1, tokens, dr), r(1, tokens, h, dv)
    pos = torch.arange(tokens, device=DEVICE, dtype=torch.int32)[None]
    scale = (dn + dr) ** -0.5
    args = (q_nope, q_pe, k_nope, k_pe, v, pos, pos)
    ours = _bench(lambda: A.decoupled_attention(*args, softmax_scale=scale))
    eager = _bench(lambda: eager_prefill(q_nope, q_pe, k_nope, k_pe, v, scale))
    comp_fn = _compiled(eager_prefill)
    comp = _bench(lambda: comp_fn(q_nope, q_pe, k_nope, k_pe, v, scale)) if comp_fn else None
    flops = 2 * h * tokens * (tokens + 1) / 2 * (dn + dr + dv)  # causal half
    roof = flops / peak
    return {
        "op": "prefill",
        "batch": 1,
        "context": tokens,
        "config": A.prefill_config(tokens, max(dn, dv) + dr).__dict__,
        "flops": flops,
        "t_triton_s": ours,
        "t_eager_s": eager,
        "t_compile_s": comp,
        "roof_s": roof,
        "tflops_triton": flops / ours / 1e12,
        "roof_triton": _ratio(roof, ours),
        "roof_eager": _ratio(roof, eager),
        "roof_compile": _ratio(roof, comp),
    }


def bench_cache_write(
    batch: int, context: int, shape: dict[str, int], bw: float, *, norm: bool = False
) -> dict:
    """One decode token per sequence written (RoPE on the rope channels); with `norm`, the
    kv norm fused into the write (`triton.norm_cache_update`) against its eager form."""
    c, dr = shape["latent"], shape["rope"]
    e = c + dr
    cache = torch.zeros(batch, context, e, device=DEVICE, dtype=torch.bfloat16)
    entries = torch.randn(batch, 1, e, device=DEVICE, dtype=torch.bfloat16)
    weight = torch.rand(c, device=DEVICE, dtype=torch.bfloat16) + 0.5
    positions = torch.full((batch, 1), context // 2, device=DEVICE, dtype=torch.int64)
    cos, sin = (t.to(DEVICE) for t in sem_rope.tables(ROPE, dr, context))
    rope = {"rope_layout": "interleaved"}
    if norm:
        ours = _bench(
            lambda: A.norm_cache_update_(
                cache, entries, weight, positions, cos, sin, eps=1e-6, **rope
            )
        )
        eager = _bench(lambda: eager_norm_cache_write(cache, entries, weight, positions))
    else:
        ours = _bench(lambda: A.cache_update_(cache, entries, positions, cos, sin, **rope))
        eager = _bench(lambda: eager_cache_write(cache, entries, positions))
    nbytes = 2 * entries.numel() * 2
    roof = nbytes / bw
    return {
        "op": "norm_cache_write" if norm else "cache_write",
        "batch": batch,
        "context": context,
        "bytes": nbytes,
        "t_triton_s": ours,
        "t_eager_s": eager,
        "t_compile_s": None,
        "roof_s": roof,
        "roof_triton": _ratio(roof, ours),
        "roof_eager": _ratio(roof, eager),
        "roof_compile": None,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:6.1f}%"


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e6:9.1f}"


def main() -> None:
    """Runs the grid and prints JSON + a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny shapes (implied on CPU)")
    args = parser.parse_args()
    small = args.small or not HAS_GPU
    if small:
        shape = {"heads": 4, "latent": 32, "rope": 16, "nope": 32, "value": 16}
        batches, contexts, prefills = (1, 2), (64, 128), (64,)
    else:
        shape = {"heads": 128, "latent": 512, "rope": 64, "nope": 128, "value": 128}
        batches, contexts, prefills = (1, 32, 128), (1024, 4096, 16384), (1024, 4096)
    torch.manual_seed(0)
    bw, peak = copy_bandwidth(), matmul_flops()
    rows = [bench_decode(b, t, shape, bw) for b in batches for t in contexts]
    rows += [bench_prefill(t, shape, peak) for t in prefills]
    rows += [
        bench_cache_write(b, max(contexts), shape, bw, norm=n)
        for n in (False, True)
        for b in batches
    ]
    result = {
        "device": torch.cuda.get_device_name() if HAS_GPU else f"cpu ({platform.machine()})",
        "interpreted": not HAS_GPU,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "shape": shape,
        "copy_bandwidth_GBps": bw / 1e9,
        "matmul_TFLOPs": peak / 1e12,
        "rows": rows,
    }
    print(json.dumps(result, indent=1))
    print(
        f"\ncopy bandwidth {bw / 1e9:.0f} GB/s, bf16 matmul {peak / 1e12:.0f} TFLOP/s"
        f"{' (interpreter: numbers meaningless)' if not HAS_GPU else ''}"
    )
    head = f"{'op':17}{'B':>5}{'T':>7}{'triton us':>11}{'eager us':>11}{'compile us':>11}"
    print(head + f"{'roof us':>11}{'triton':>9}{'paged':>9}{'eager':>9}{'compile':>9}")
    for r in rows:
        print(
            f"{r['op']:17}{r['batch']:5}{r['context']:7}{_us(r['t_triton_s']):>11}"
            f"{_us(r['t_eager_s']):>11}{_us(r['t_compile_s']):>11}{_us(r['roof_s']):>11}"
            f"{_pct(r['roof_triton']):>9}{_pct(r.get('roof_triton_paged')):>9}"
            f"{_pct(r['roof_eager']):>9}{_pct(r['roof_compile']):>9}"
        )


if __name__ == "__main__":
    main()
