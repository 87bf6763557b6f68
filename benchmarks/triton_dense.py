#!/usr/bin/env python3
"""The `triton` target's MLA projection, RoPE, embedding and dense-MLP kernels against PyTorch.

    .venv/bin/python benchmarks/triton_dense.py            # GPU: DeepSeek-V3 shapes
    .venv/bin/python benchmarks/triton_dense.py --small    # tiny shapes (interpreter on CPU)

At decode batch sizes (tokens = batch, one new token each): `mla.absorb_query` and
`mla.absorb_output` (128 heads, W_UK / W_UV of 128 x 512 per head, bf16), `mla.kv_expand` over
a prefill chunk, `mla.rotary_embedding` of the 128-head rope part (64 channels),
`torch.aten.embedding` (vocab 129280, dim 7168) and `moe.mlp` (the shared expert: 7168 -> 2048
-> 7168). Eager = the same math in bf16 PyTorch (einsum / F.linear / indexing, what a user
would run), `torch.compile` of it; roof = max(bytes / measured copy bandwidth, FLOPs /
measured matmul peak). Rows use `triton_moe.py`'s format (`kernel`, `tokens`, `triton_s`,
`eager_s`, `compile_s`, `roof_s`); `gpu_suite.py` runs them as its ``dense`` section.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
import torch.nn.functional as F
import triton_moe as TM

from mlacc.runtime.triton import embedding, heads, moe, rotary

V3 = {"heads": 128, "nope": 128, "value": 128, "latent": 512, "rope": 64, "dim": 7168}
V3.update({"inter": 2048, "vocab": 129280, "tokens": [32, 128], "chunk": 1024})
SMALL = {"heads": 4, "nope": 32, "value": 16, "latent": 32, "rope": 16, "dim": 64}
SMALL.update({"inter": 32, "vocab": 100, "tokens": [2], "chunk": 16})
ROPE = {
    "layout": "interleaved",
    "theta": 10000.0,
    "factor": 40.0,
    "original_seq_len": 4096,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "truncate": True,
    "cos_sin_scale": 1.0,
}


def eager_absorb_query(q, w_uk):
    return torch.einsum("bshd,hdc->bshc", q, w_uk)


def eager_absorb_output(ctx, w_uv):
    return torch.einsum("bshc,hdc->bshd", ctx, w_uv)


def eager_kv_expand(latent, w_uk, w_uv):
    return torch.einsum("btc,hdc->bthd", latent, w_uk), torch.einsum("btc,hdc->bthd", latent, w_uv)


def eager_rotary(x, positions):
    from mlacc.runtime.semantics import mla as sem_mla

    return sem_mla.rotary_embedding(x, positions, rope=ROPE)


def eager_embedding(ids, table):
    return F.embedding(ids, table)


def eager_mlp(x, wg, wu, wd):
    return F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd)


def _row(kernel: str, tokens: int, triton_fn, eager, args: tuple, reps: int, roof_s: float):
    """A measured row; `eager` is a module-level function (compiled once, dynamic shapes)."""
    compiled = TM.maybe_compile(eager)
    return {
        "kernel": kernel,
        "tokens": tokens,
        "triton_s": TM.timed(triton_fn, reps),
        "eager_s": TM.timed(lambda: eager(*args), reps),
        "compile_s": TM.timed(lambda: compiled(*args), reps) if compiled else None,
        "roof_s": roof_s,
    }


def dense_cases(cfg: dict[str, Any], reps: int, bw: float, peak: float) -> list[dict[str, Any]]:
    """One row per kernel and token count (see the module docstring)."""
    dev, bf16 = TM.DEV, torch.bfloat16
    h, dn, dv, c, dr, d = (cfg[k] for k in ("heads", "nope", "value", "latent", "rope", "dim"))
    inter = cfg["inter"]
    dims = {"num_heads": h, "qk_nope_head_dim": dn, "v_head_dim": dv}
    wkv_b = (torch.randn(h * (dn + dv), c, device=dev) * 0.05).to(bf16)
    w = wkv_b.view(h, dn + dv, c)
    w_uk, w_uv = w[:, :dn], w[:, dn:]
    table = torch.randn(cfg["vocab"], d, device=dev).to(bf16)
    wg, wu = ((torch.randn(inter, d, device=dev) * 0.02).to(bf16) for _ in range(2))
    wd = (torch.randn(d, inter, device=dev) * 0.02).to(bf16)
    rows = []

    def roof(nbytes: float, flops: float = 0.0) -> float:
        return max(nbytes / bw, flops / peak)

    for b in cfg["tokens"]:
        q = torch.randn(b, 1, h, dn, device=dev).to(bf16)
        ctx = torch.randn(b, 1, h, c, device=dev).to(bf16)
        x_pe = torch.randn(b, 1, h, dr, device=dev).to(bf16)
        pos = torch.randint(0, 4096, (b, 1), device=dev)
        ids = torch.randint(0, cfg["vocab"], (b, 1), device=dev)
        x = torch.randn(b, d, device=dev).to(bf16)
        rows += [
            _row(
                "absorb_query", b, lambda q=q: heads.absorb_query(q, wkv_b, **dims),
                eager_absorb_query, (q, w_uk), reps,
                roof(2 * (h * dn * c + b * h * (dn + c)), 2 * b * h * dn * c),
            ),
            _row(
                "absorb_output", b, lambda x=ctx: heads.absorb_output(x, wkv_b, **dims),
                eager_absorb_output, (ctx, w_uv), reps,
                roof(2 * (h * dv * c + b * h * (dv + c)), 2 * b * h * dv * c),
            ),
            _row(
                "rotary", b, lambda x=x_pe, p=pos: rotary.rotary_embedding(x, p, rope=ROPE),
                eager_rotary, (x_pe, pos), reps, roof(2 * 2 * b * h * dr),
            ),
            _row(
                "embedding", b, lambda i=ids: embedding.embedding(table, i),
                eager_embedding, (ids, table), reps, roof(2 * 2 * b * d),
            ),
            _row(
                "mlp (shared)", b, lambda x=x: moe.mlp(x, wg, wu, wd),
                eager_mlp, (x, wg, wu, wd), reps,
                roof(2 * 3 * d * inter, 2 * 3 * b * d * inter),
            ),
        ]  # fmt: skip
    t = cfg["chunk"]
    latent = torch.randn(1, t, c, device=dev).to(bf16)
    rows.append(
        _row(
            "kv_expand",
            t,
            lambda: heads.kv_expand(latent, wkv_b, **dims),
            eager_kv_expand,
            (latent, w_uk, w_uv),
            reps,
            roof(2 * (h * (dn + dv) * c + t * c + t * h * (dn + dv)), 2 * t * c * h * (dn + dv)),
        )
    )
    return rows


def main() -> None:
    """Prints the rows as JSON and a table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="tiny shapes (implied without a GPU)")
    args = p.parse_args()
    small = args.small or not TM.HAS_GPU
    reps = 2 if small else 20
    bw, peak = TM.copy_bandwidth(reps), TM.matmul_peak(reps)
    rows = dense_cases(SMALL if small else V3, reps, bw, peak)
    print(json.dumps({"copy_GBps": bw / 1e9, "matmul_TFLOPs": peak / 1e12, "rows": rows}))
    for r in rows:
        pct = 100 * r["roof_s"] / r["triton_s"]
        print(f"{r['kernel']:<14}{r['tokens']:>6}{r['triton_s'] * 1e6:>12.1f} us  roof {pct:.1f}%")


if __name__ == "__main__":
    main()
