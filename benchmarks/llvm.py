#!/usr/bin/env python3
"""The `llvm` (CPU) target against PyTorch on this machine, side by side in one run.

    .venv/bin/python benchmarks/llvm.py [--quick] [--threads N] [--json out.json]

Measures, all with the same number of threads (`--threads`, default: the CPUs this process
may use) and medians of repeated runs:

- memory bandwidth: a large numpy copy (read + write bytes / s): the GEMV roof;
- GEMV / GEMM at DeepSeek-V2-Lite shapes (``x [M, K] · W [N, K]^T``, M = 1 and 128), fp32
  and bf16 weights: the llvm target's `torch.aten.linear` against ``torch.nn.functional
  .linear`` (and numpy's BLAS for fp32); GEMV also as GB/s of weights against the roof, each
  call on another copy of the weight (`COLD_BYTES` of them: one weight alone would stay in
  the last-level cache and beat the memory roof);
- models, batch 1: a 128-token prefill and a decode step (context 128) of deepseek-v3-tiny and
  of one DeepSeek-V2-Lite MoE layer (dim 2048, 64 experts top-6, expert inter 1408, latent
  512 + 64 rope; vocab cut to 4096 so that the layer dominates; random weights), fp32 and
  bf16: llvm against eager PyTorch of the same graph (the `reference` target's executor, with
  the same KV cache) and the model's own ``forward`` eager and under ``torch.compile``
  (inductor; a decode step there is ``forward`` of the one new token without a cache, a lower
  bound of the real step); compile times (llvm at the default opt_level 3).

Prints one JSON object (also written to ``--json``) and a table. The machine may be shared:
the load average is recorded beside the numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import mlacc
from mlacc.frontend.models import DeepSeekModel, get_config

PREFILL, CONTEXT = 128, 256
ELEM = {torch.float32: "f32", torch.bfloat16: "bf16"}


def median_s(fn: Callable[[], Any], reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bandwidth(reps: int) -> dict[str, float]:
    """GB/s of a 256 MiB numpy copy (bytes read + written) and of a torch copy_."""
    n = 64 << 20
    src = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    dst = np.empty_like(src)
    t = median_s(lambda: np.copyto(dst, src), reps)
    ts, td = torch.from_numpy(src), torch.from_numpy(dst)
    tt = median_s(lambda: td.copy_(ts), reps)
    return {
        "numpy_copy_GBps": 2 * src.nbytes / t / 1e9,
        "torch_copy_GBps": 2 * src.nbytes / tt / 1e9,
    }


def linear_module(m: int, n: int, k: int, dtype: torch.dtype, w_input: bool = False) -> str:
    """MLIR text of ``y = x [m, k] · w [n, k]^T`` on a stored weight ``w`` (or, with
    `w_input`, on a weight passed per call)."""
    e = ELEM[dtype]
    x, w, y = (f"!torch.vtensor<[{a},{b}],{e}>" for a, b in ((m, k), (n, k), (m, n)))
    if w_input:
        head = f"func.func @linear(%x: {x}, %w: {w}) -> {y} {{"
    else:
        head = (
            f"func.func @linear(%x: {x}) -> {y} {{\n"
            f'  %w = "mlacc.weight"() {{key = "w"}} : () -> {w}'
        )
    return f"""{head}
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : {x}, {w}, !torch.none -> {y}
  return %y : {y}
}}"""


GEMM_SHAPES = [  # (what, N, K) of DeepSeek-V2-Lite
    ("wq (16 heads x 192)", 3072, 2048),
    ("expert gate+up", 2816, 2048),
    ("expert down", 2048, 1408),
]


# GEMV reads each weight once: it is timed over enough distinct weights (> 8x this size) that
# none is still in the last-level cache when it comes round again, as in a model's decode step
COLD_BYTES = 256 << 20


def gemm(m: int, n: int, k: int, dtype: torch.dtype, threads: int, reps: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(n, k, generator=g) * k**-0.5).to(dtype)
    x = torch.randn(m, k, generator=g).to(dtype)
    cold = m == 1
    copies = max(1, -(-COLD_BYTES // (w.numel() * w.element_size()))) if cold else 1
    ws = [w] + [w.clone() for _ in range(copies - 1)]
    t0 = time.perf_counter()
    if cold:
        art = mlacc.compile(linear_module(m, n, k, dtype, True), target="llvm", pipeline="none")
    else:
        art = mlacc.compile(
            linear_module(m, n, k, dtype), target="llvm", pipeline="none", weights={"w": w}
        )
    compile_s = time.perf_counter() - t0
    exe = art.load()
    exe.executor.set_num_threads(threads)
    got = exe.run("linear", x, w) if cold else exe.run("linear", x)
    want = torch.nn.functional.linear(x.float(), w.float())
    err = ((got.float() - want).norm() / want.norm()).item()
    flops = 2 * m * n * k

    def rotating(fn: Callable[[Any], Any], weights: list[Any]) -> float:
        """Median seconds of `fn(weight)`, the weight changing every call."""
        it = iter(range(1 << 62))
        return median_s(lambda: fn(weights[next(it) % len(weights)]), reps * copies, copies)

    llvm_call = (lambda wi: exe.run("linear", x, wi)) if cold else (lambda _: exe.run("linear", x))
    row: dict[str, Any] = {
        "M": m,
        "N": n,
        "K": k,
        "dtype": str(dtype).removeprefix("torch."),
        "weights_rotated": copies,
        "compile_s": compile_s,
        "rel_err": err,
        "llvm_s": rotating(llvm_call, ws),
        "torch_s": rotating(lambda wi: torch.nn.functional.linear(x, wi), ws),
    }
    if dtype == torch.float32:
        xn, wts = x.numpy(), [wi.numpy().T for wi in ws]
        row["numpy_s"] = rotating(lambda wt: xn @ wt, wts)
    for key in ("llvm", "torch", "numpy"):
        if f"{key}_s" in row:
            row[f"{key}_GFLOPs"] = flops / row[f"{key}_s"] / 1e9
    row["weight_GBps"] = w.numel() * w.element_size() / row["llvm_s"] / 1e9
    return row


def v2_lite_layer() -> Any:
    """One DeepSeek-V2-Lite MoE layer (vocab cut to 4096)."""
    return get_config("deepseek-v2-lite").replace(
        n_layers=1, n_dense_layers=0, vocab_size=4096, max_seq_len=CONTEXT, n_mtp_layers=0
    )


def build(name: str, dtype: torch.dtype) -> torch.nn.Module:
    if name == "deepseek-v3-tiny":
        config = get_config(name).replace(max_seq_len=CONTEXT)
    else:
        config = v2_lite_layer()
    torch.manual_seed(0)
    model = DeepSeekModel(config).eval()
    model.init_weights(0)
    return model.to(dtype)


def model_rows(
    name: str, dtype: torch.dtype, threads: int, reps: int, with_compile: bool
) -> dict[str, Any]:
    model = build(name, dtype)
    example = (torch.zeros(1, PREFILL, dtype=torch.int64),)
    row: dict[str, Any] = {"model": name, "dtype": str(dtype).removeprefix("torch.")}
    t0 = time.perf_counter()
    art = mlacc.compile(model, example, target="llvm", cache_len=CONTEXT)
    row["llvm_compile_s"] = time.perf_counter() - t0
    llvm = art.load()
    llvm.executor.set_num_threads(threads)
    reference = mlacc.compile(model, example, target="reference", cache_len=CONTEXT).load()
    spec = art.manifest["kv_cache"]
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (1, PREFILL), generator=g)
    pos = torch.arange(PREFILL)[None]
    tok1, pos1 = torch.tensor([[7]]), torch.tensor([[PREFILL]])

    def caches() -> list[torch.Tensor]:
        cdt = getattr(torch, spec.get("dtype", "float32"))
        return [torch.zeros(spec["shape"], dtype=cdt) for _ in range(spec["layers"])]

    for who, exe in (("llvm", llvm), ("eager_graph", reference)):
        cs = caches()
        out = exe.run("prefill", tokens, pos, *cs)
        row[f"{who}_prefill_s"] = median_s(lambda: exe.run("prefill", tokens, pos, *cs), reps)  # noqa: B023
        row[f"{who}_decode_s"] = median_s(lambda: exe.run("decode", tok1, pos1, *cs), 3 * reps)  # noqa: B023
        row[f"{who}_logits"] = out[0][0, -1].float()
    want = row.pop("eager_graph_logits")
    got = row.pop("llvm_logits")
    row["rel_err_vs_reference"] = ((got - want).norm() / want.norm()).item()
    with torch.no_grad():
        row["eager_prefill_s"] = median_s(lambda: model(tokens), reps)
        row["eager_decode_s"] = median_s(lambda: model(tok1, pos1), 3 * reps)
        if with_compile:
            try:
                torch._dynamo.reset()
                compiled = torch.compile(model, dynamic=False)
                t0 = time.perf_counter()
                compiled(tokens)
                compiled(tok1, pos1)
                row["compile_compile_s"] = time.perf_counter() - t0
                row["compile_prefill_s"] = median_s(lambda: compiled(tokens), reps)
                row["compile_decode_s"] = median_s(lambda: compiled(tok1, pos1), 3 * reps)
            except Exception as err:  # noqa: BLE001 - report, do not stop the benchmark
                row["compile_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    for phase in ("prefill", "decode"):
        for other in ("eager_graph", "eager", "compile"):
            if f"{other}_{phase}_s" in row:
                row[f"{phase}_vs_{other}"] = row[f"{other}_{phase}_s"] / row[f"llvm_{phase}_s"]
    del llvm, reference, art
    gc.collect()
    return row


def table(result: dict[str, Any]) -> str:
    lines = [
        f"machine: {result['machine']}, threads {result['threads']}, load before/after "
        f"{result['load_before']} / {result['load_after']}",
        f"bandwidth: numpy copy {result['bandwidth']['numpy_copy_GBps']:.1f} GB/s, torch copy_ "
        f"{result['bandwidth']['torch_copy_GBps']:.1f} GB/s",
        "",
        f"{'GEMM':<22}{'M':>5}{'dtype':>9}{'llvm GF/s':>11}{'torch':>8}{'numpy':>8}"
        f"{'llvm/torch':>11}{'W GB/s':>8}{'roof %':>8}",
    ]
    bw = result["bandwidth"]["numpy_copy_GBps"]
    for r in result["gemm"]:
        numpy_gf = f"{r['numpy_GFLOPs']:.1f}" if "numpy_GFLOPs" in r else "-"
        roof = f"{100 * r['weight_GBps'] / bw:.0f}" if r["M"] == 1 else "-"
        lines.append(
            f"{r['what']:<22}{r['M']:>5}{r['dtype']:>9}{r['llvm_GFLOPs']:>11.1f}"
            f"{r['torch_GFLOPs']:>8.1f}{numpy_gf:>8}{r['llvm_GFLOPs'] / r['torch_GFLOPs']:>11.2f}"
            f"{r['weight_GBps']:>8.1f}{roof:>8}"
        )
    lines += [
        "",
        f"{'model':<18}{'dtype':>9}{'phase':>9}{'llvm ms':>9}{'graph ms':>10}{'eager ms':>10}"
        f"{'compile ms':>11}{'vs graph':>9}{'vs eager':>9}{'vs comp':>8}",
    ]

    def ms(row: dict[str, Any], key: str) -> str:
        return f"{1e3 * row[key]:.2f}" if key in row else "-"

    def x(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.2f}" if key in row else "-"

    for r in result["models"]:
        for phase in ("prefill", "decode"):
            lines.append(
                f"{r['model']:<18}{r['dtype']:>9}{phase:>9}{ms(r, f'llvm_{phase}_s'):>9}"
                f"{ms(r, f'eager_graph_{phase}_s'):>10}{ms(r, f'eager_{phase}_s'):>10}"
                f"{ms(r, f'compile_{phase}_s'):>11}{x(r, f'{phase}_vs_eager_graph'):>9}"
                f"{x(r, f'{phase}_vs_eager'):>9}{x(r, f'{phase}_vs_compile'):>8}"
            )
        extra = f"  compile: llvm {r['llvm_compile_s']:.1f}s"
        if "compile_compile_s" in r:
            extra += f", torch.compile {r['compile_compile_s']:.1f}s"
        if "compile_error" in r:
            extra += f", torch.compile failed: {r['compile_error']}"
        extra += f"; llvm vs reference logits rel err {r['rel_err_vs_reference']:.1e}"
        lines.append(extra)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes/reps, no bf16 models")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-torch-compile", action="store_true")
    parser.add_argument("--json", help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reps = 5 if args.quick else 10
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{len(os.sched_getaffinity(0))} CPUs".strip(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_before": os.getloadavg()[0],
    }
    result["bandwidth"] = bandwidth(reps)
    rows = []
    shapes = GEMM_SHAPES[1:2] if args.quick else GEMM_SHAPES
    for what, n, k in shapes:
        for m in (1, PREFILL):
            for dtype in (torch.float32, torch.bfloat16):
                row = gemm(m, n, k, dtype, args.threads, reps)
                rows.append({"what": what, **row})
    result["gemm"] = rows
    models = [("deepseek-v3-tiny", torch.float32), ("deepseek-v2-lite-layer", torch.float32)]
    if not args.quick:
        models.append(("deepseek-v2-lite-layer", torch.bfloat16))
    result["models"] = [
        model_rows(name, dtype, args.threads, reps, not args.no_torch_compile and not args.quick)
        for name, dtype in models
    ]
    result["load_after"] = os.getloadavg()[0]
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print()
    print(table(result))


if __name__ == "__main__":
    main()
