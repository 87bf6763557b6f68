#!/usr/bin/env python3
"""The `triton` target's GPU benchmarks in one command (< 5 minutes on an H200).

Two steps, because the GPU machine has no torch-mlir (it cannot compile) and no package index:

    # here (torch-mlir installed): compile the decode-step models, timing-only (no weight data,
    # a few MB), and the `sim` prediction of the same steps on the h200-like / h100-like presets
    .venv/bin/python benchmarks/gpu_suite.py --prepare build/gpu_suite
    # there (torch + triton only; mlacc imported from this checkout, nothing installed)
    python benchmarks/gpu_suite.py build/gpu_suite

The run measures, in one process: the roofs (device-to-device copy bandwidth, bf16 8192^3
matmul), the MLA kernels (`triton_attention.py`: decode for batch {1, 32, 128} x context {1024,
4096, 16384}, causal prefill, the cache write), the MoE / FP8 / RMSNorm kernels
(`triton_moe.py`: a DeepSeek-V3 MoE layer for 1..4096 tokens, FP8 block GEMM, RMSNorm), the MLA
projections / RoPE / embedding / shared-expert MLP (`triton_dense.py`, decode batch 32 and 128,
kv_expand over a 1024-token chunk), each against eager PyTorch and `torch.compile` of the same
math, and an end-to-end decode step of a model with DeepSeek-V3 layer shapes (1 dense + 1 MoE
layer by default, batch 32 and 128, 4096-token cache, random bf16 weights drawn on the GPU) run
by the `triton` executor (CUDA graph) against the same plan in eager PyTorch (`reference`
executor), the roof (weight + cache bytes / copy bandwidth) and the `sim` prediction. It prints
one JSON object and a table, and writes ``$OUT/gpu_suite.json`` when ``OUT`` is set. No
torch.compile baseline starts after `--budget-s` (default 200 s) so that the whole run stays
under 5 minutes; skipped ones print as "-". A failing section is recorded (``error``) and the
others still run.

``--small`` (prepare and run) uses tiny shapes; without a GPU the kernels run under
TRITON_INTERPRET=1 and the whole harness runs end to end on a CPU (numbers meaningless).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
START = time.monotonic()

import torch  # noqa: E402

HAS_GPU = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in ("", "0")
if not HAS_GPU:
    os.environ["TRITON_INTERPRET"] = "1"  # before any Triton kernel is imported
DEV = torch.device("cuda" if HAS_GPU else "cpu")

# The decode-step model: DeepSeek-V3's layer shapes (dim 7168, 128 heads, latent 512 + 64,
# 256 experts top-8, inter 2048, vocab 129280), few layers, no MTP layer.
STEP = {"layers": 2, "dense_layers": 1, "batches": [32, 128], "context": 4096, "chunk": 16}
STEP_SMALL = {"layers": 2, "dense_layers": 1, "batches": [2], "context": 64, "chunk": 8}
SIM_DEVICES = ("h200-like", "h100-like")


def bootstrap_mlacc() -> str:
    """Makes `mlacc` importable: the installed package if there is one, else this checkout
    mapped as setuptools' package-dir does (``mlacc.runtime`` -> ``runtime/``, ...), with the
    `triton` executor registered (entry points exist only for an installed package)."""
    try:
        import mlacc.runtime  # noqa: F401

        return "installed"
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(
        "mlacc",
        ROOT / "mlacc" / "__init__.py",
        submodule_search_locations=[str(ROOT / "mlacc"), str(ROOT)],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlacc"] = module
    spec.loader.exec_module(module)
    from mlacc.runtime.executors import register_executor
    from mlacc.runtime.executors.reference import ReferenceExecutor
    from mlacc.runtime.executors.triton import TritonExecutor

    register_executor("triton", TritonExecutor)
    register_executor("reference", ReferenceExecutor)
    return f"checkout {ROOT} (not installed)"


# --------------------------------------------------------------------------------------------
# --prepare (this machine: torch-mlir)


def step_model(small: bool) -> torch.nn.Module:
    """The decode-step model on the meta device (bf16, no data)."""
    from mlacc.frontend.models import DeepSeekModel, get_config

    shape = STEP_SMALL if small else STEP
    base = get_config("deepseek-v3-tiny" if small else "deepseek-v3")
    config = base.replace(
        n_layers=shape["layers"], n_dense_layers=shape["dense_layers"], n_mtp_layers=0
    )
    with torch.device("meta"):
        return DeepSeekModel(config).to(torch.bfloat16).eval()


def prepare(out_dir: Path, small: bool) -> dict[str, Any]:
    """Compiles the decode-step models (triton, timing-only) and simulates their decode step."""
    import mlacc
    from mlacc.runtime.synthetic import synthetic_inputs

    shape = STEP_SMALL if small else STEP
    out_dir.mkdir(parents=True, exist_ok=True)
    model = step_model(small)
    steps = []
    for batch in shape["batches"]:
        example = (torch.zeros(batch, shape["chunk"], dtype=torch.int64, device="meta"),)
        t0 = time.perf_counter()
        art = mlacc.compile(
            model, example, target="triton", timing_only=True, cache_len=shape["context"]
        )
        path = art.save(out_dir / f"decode_b{batch}.mlacc")
        # the eager baseline: the same model for `reference` (no fused triton.* steps)
        ref = mlacc.compile(
            model, example, target="reference", timing_only=True, cache_len=shape["context"]
        ).save(out_dir / f"decode_b{batch}_reference.mlacc")
        entry: dict[str, Any] = {
            "batch": batch,
            "context": shape["context"],
            "artifact": path.name,
            "reference_artifact": ref.name,
            "compile_s": time.perf_counter() - t0,
            "sim": {},
        }
        for device in SIM_DEVICES:
            sim = mlacc.compile(
                model,
                example,
                target="sim",
                timing_only=True,
                cache_len=shape["context"],
                device=device,
            ).load()
            inputs = synthetic_inputs(sim.entry_points["decode"]["inputs"], meta=True)
            sim.run("decode", *inputs)
            entry["sim"][device] = {"step_s": sim.report().time_per_token()}
        steps.append(entry)
    info = {
        "small": small,
        "model": {k: v for k, v in shape.items() if k != "batches"},
        "steps": steps,
        "torch": torch.__version__,
    }
    (out_dir / "prepared.json").write_text(json.dumps(info, indent=1))
    return info


# --------------------------------------------------------------------------------------------
# run (the GPU machine)


def _section(results: dict[str, Any], name: str, fn: Any, *args: Any) -> None:
    t0 = time.monotonic()
    try:
        results[name] = fn(*args)
    except Exception as err:  # noqa: BLE001 - one failing section must not lose the others
        results[name] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
        print(f"[gpu_suite] section {name} failed: {type(err).__name__}: {err}", file=sys.stderr)
    print(f"[gpu_suite] {name}: {time.monotonic() - t0:.1f} s", file=sys.stderr)


def _sync() -> None:
    if HAS_GPU:
        torch.cuda.synchronize()


def _time(fn: Any, reps: int) -> float:
    """Median seconds per call (after one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def random_weights(specs: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Weights for a manifest's weight table, drawn on the device: norms 1, vectors
    N(0, 0.01), matrices N(0, 1/fan_in) (as `runtime.synthetic`, without a CPU draw)."""
    gen = torch.Generator(device=DEV).manual_seed(0)
    out = {}
    for key, spec in sorted(specs.items()):
        shape, dtype = spec["shape"], getattr(torch, spec["dtype"])
        if not dtype.is_floating_point:
            out[key] = torch.zeros(shape, dtype=dtype, device=DEV)
            continue
        draw = dtype if dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
        if "norm" in key:
            t = torch.ones(shape, dtype=draw, device=DEV)
        else:
            t = torch.randn(shape, generator=gen, dtype=draw, device=DEV)
            t.mul_(0.1 if len(shape) == 1 else 1 / math.sqrt(shape[-1]))
        out[key] = t.to(dtype)
    return out


def _time_decode(art: Any, inputs: list[torch.Tensor], reps: int) -> dict[str, Any]:
    """Loads `art` and times its decode step: seconds per step, seconds from the load to the
    end of the first step (kernel compiles or carried cubins, CUDA-graph capture), and the
    executor's CUDA-graph and cubin status. Nothing here keeps the executable."""
    from mlacc.runtime.executable import Executable

    _sync()
    start = time.perf_counter()
    exe = Executable(art)
    exe.run("decode", *inputs)
    _sync()
    first = time.perf_counter() - start
    return {
        "step_s": _time(lambda: exe.run("decode", *inputs), reps),
        "first_s": first,
        "cuda_graph": getattr(exe.executor, "cuda_graph_status", None),
        "binaries": getattr(exe.executor, "binaries_status", None),
    }


def decode_step(prepared: Path, bw: float, reps: int) -> dict[str, Any]:
    """Each prepared decode step on `triton` (CUDA graph) and eager (`reference` executor)."""
    from mlacc.runtime.artifact import read_artifact

    info = json.loads((prepared / "prepared.json").read_text())
    rows = []
    for step in info["steps"]:
        art = read_artifact(prepared / step["artifact"])
        specs = art.manifest["weights"]["tensors"]
        art.weights = random_weights(specs)
        art.manifest["weights"]["present"] = True
        cache = art.manifest["kv_cache"]
        shape = cache.get("shape") or [cache["batch"], cache["max_seq_len"], cache["entry"]]
        dtype = getattr(torch, cache["dtype"])
        caches = [torch.zeros(shape, dtype=dtype, device=DEV) for _ in range(cache["layers"])]
        ins = art.manifest["entry_points"]["decode"]["inputs"]
        b, ctx = cache["batch"], cache["max_seq_len"]
        vocab = art.manifest["entry_points"]["decode"]["outputs"][0]["shape"][-1]
        tokens = torch.randint(0, vocab, (b, 1), device=DEV).to(getattr(torch, ins[0]["dtype"]))
        positions = torch.full((b, 1), ctx - 1, device=DEV, dtype=getattr(torch, ins[1]["dtype"]))
        item = lambda t: t.numel() * t.element_size()  # noqa: E731
        weight_bytes = sum(item(t) for k, t in art.weights.items() if "embed" not in k)
        cache_bytes = sum(item(c) for c in caches)
        row: dict[str, Any] = {
            "batch": b,
            "context": ctx,
            "layers": cache["layers"],
            "weight_bytes": weight_bytes,
            "cache_bytes": cache_bytes,
            "roof_s": (weight_bytes + cache_bytes) / bw,
            "sim": step["sim"],
        }
        inputs = [tokens, positions, *caches]
        timed = _time_decode(art, inputs, reps)
        row["t_triton_s"], row["t_triton_first_s"] = timed["step_s"], timed["first_s"]
        row["cuda_graph"], row["binaries"] = timed["cuda_graph"], timed["binaries"]
        gc.collect()
        if HAS_GPU:
            torch.cuda.empty_cache()
        ref = read_artifact(prepared / step["reference_artifact"])
        ref.weights = art.weights
        ref.manifest["weights"]["present"] = True
        row["t_eager_s"] = _time_decode(ref, inputs, 3)["step_s"]
        del art, ref, caches, inputs
        gc.collect()
        if HAS_GPU:
            torch.cuda.empty_cache()
        row["t_compile_s"] = None  # torch.compile of a whole plan: not measured
        row["roof_triton"] = row["roof_s"] / row["t_triton_s"]
        row["roof_eager"] = row["roof_s"] / row["t_eager_s"]
        rows.append(row)
    return {"model": info["model"], "rows": rows}


def run(prepared: Path | None, small: bool, budget_s: float) -> dict[str, Any]:
    import triton

    sys.path.insert(0, str(BENCH))
    import triton_attention as TA
    import triton_dense as TD
    import triton_moe as TM

    TA.COMPILE_DEADLINE = TM.COMPILE_DEADLINE = START + budget_s
    small = small or not HAS_GPU
    torch.manual_seed(0)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if HAS_GPU else f"cpu ({platform.machine()})",
        "interpreted": not HAS_GPU,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "small": small,
    }
    bw, peak = TA.copy_bandwidth(), TA.matmul_flops()
    results["roofs"] = {"copy_bandwidth_GBps": bw / 1e9, "matmul_TFLOPs": peak / 1e12}
    if small:
        att = {"heads": 4, "latent": 32, "rope": 16, "nope": 32, "value": 16}
        batches, contexts, prefills = (1, 2), (64,), (64,)
        moe_cfg = {"experts": 16, "top_k": 4, "dim": 64, "inter": 32, "groups": 4, "topk_group": 2}
        moe_tokens, fp8_shapes, rms_rows, reps = [1, 16], [(16, 256, 256)], [16], 2
    else:
        att = {"heads": 128, "latent": 512, "rope": 64, "nope": 128, "value": 128}
        batches, contexts, prefills = (1, 32, 128), (1024, 4096, 16384), (1024, 4096)
        moe_cfg = {
            "experts": 256,
            "top_k": 8,
            "dim": 7168,
            "inter": 2048,
            "groups": 8,
            "topk_group": 4,
        }
        moe_tokens = [1, 8, 32, 128, 512, 4096]
        fp8_shapes = [(m, 2048, 7168) for m in (128, 1024, 4096)]
        rms_rows, reps = [1, 128, 4096], 10

    def attention() -> list[dict[str, Any]]:
        rows = [TA.bench_decode(b, t, att, bw) for b in batches for t in contexts]
        rows += [TA.bench_prefill(t, att, peak) for t in prefills]
        rows += [
            TA.bench_cache_write(b, max(contexts), att, bw, norm=n)
            for n in (False, True)
            for b in batches
        ]
        return rows

    def moe() -> list[dict[str, Any]]:
        weights = TM.moe_weights(moe_cfg)
        rows = [TM.moe_case(t, moe_cfg, reps, bw, weights) for t in moe_tokens]
        del weights
        rows += [TM.fp8_case(m, n, k, reps, peak) for m, n, k in fp8_shapes]
        rows += [TM.rms_case(r, moe_cfg["dim"], reps, bw) for r in rms_rows]
        for r in rows:
            r["roof"] = r["roof_s"] / r["triton_s"]
        return rows

    _section(results, "attention", attention)
    if HAS_GPU:
        torch.cuda.empty_cache()
    _section(results, "moe", moe)
    if HAS_GPU:
        torch.cuda.empty_cache()

    def dense() -> list[dict[str, Any]]:
        rows = TD.dense_cases(TD.SMALL if small else TD.V3, reps, bw, peak)
        for r in rows:
            r["roof"] = r["roof_s"] / r["triton_s"]
        return rows

    _section(results, "dense", dense)
    if HAS_GPU:
        torch.cuda.empty_cache()
    if prepared is not None:
        _section(results, "decode_step", decode_step, prepared, bw, 3 if small else 20)
    results["wall_s"] = time.monotonic() - START
    return results


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e6:.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _x(num: float | None, den: float | None) -> str:
    return "-" if num is None or den is None else f"{num / den:.2f}x"


def _rows(section: Any) -> list[dict[str, Any]]:
    """A section's rows; none when it failed (its error is printed at the end)."""
    return section if isinstance(section, list) else []


def table(results: dict[str, Any]) -> str:
    """One line per measurement: times, roof %, speedup over eager / torch.compile."""
    r = results["roofs"]
    lines = [
        f"{results['device']}, torch {results['torch']}, triton {results['triton']}: copy "
        f"{r['copy_bandwidth_GBps']:.0f} GB/s, bf16 matmul {r['matmul_TFLOPs']:.0f} TFLOP/s"
        + (" (interpreter: numbers meaningless)" if results["interpreted"] else ""),
        "",
        f"{'what':<18}{'B/tokens':>9}{'ctx':>7}{'triton us':>12}{'eager us':>12}"
        f"{'compile us':>12}{'roof us':>11}{'roof %':>8}{'vs eager':>10}{'vs compile':>11}",
    ]

    def line(what, n, ctx, t, e, c, roof) -> None:
        lines.append(
            f"{what:<18}{n:>9}{ctx:>7}{_us(t):>12}{_us(e):>12}{_us(c):>12}{_us(roof):>11}"
            f"{_pct(roof / t if roof and t else None):>8}{_x(e, t):>10}{_x(c, t):>11}"
        )

    att = results.get("attention")
    if isinstance(att, list):
        for a in att:
            line(
                a["op"], a["batch"], a["context"], a["t_triton_s"], a["t_eager_s"],
                a["t_compile_s"], a["roof_s"],
            )  # fmt: skip
            if a.get("t_triton_paged_s"):
                line("  paged(64)", a["batch"], a["context"], a["t_triton_paged_s"], None, None,
                     a["roof_s"])  # fmt: skip
    kernel_rows = [r for name in ("moe", "dense") for r in _rows(results.get(name))]
    for m in kernel_rows:
        line(m["kernel"], m["tokens"], "", m["triton_s"], m["eager_s"], m["compile_s"],
             m["roof_s"])  # fmt: skip
    step = results.get("decode_step")
    if isinstance(step, dict) and "rows" in step:
        for s in step["rows"]:
            line(f"decode step {s['layers']}L", s["batch"], s["context"], s["t_triton_s"],
                 s["t_eager_s"], s["t_compile_s"], s["roof_s"])  # fmt: skip
            for device, pred in s["sim"].items():
                lines.append(
                    f"{'  sim ' + device:<14}{s['batch']:>9}{s['context']:>7}"
                    f"{_us(pred['step_s']):>12}   (simulated step; triton measured / simulated "
                    f"{_x(s['t_triton_s'], pred['step_s'])})"
                )
            lines.append(f"{'':14}cuda graph: {s['cuda_graph']}")
            lines.append(
                f"{'':14}first step {s['t_triton_first_s']:.1f} s after load; "
                f"cubins: {s['binaries']}"
            )
    for name in ("attention", "moe", "dense", "decode_step"):
        sec = results.get(name)
        if isinstance(sec, dict) and "error" in sec:
            lines.append(f"{name}: FAILED {sec['error']}")
    lines.append(f"\nwall {results['wall_s']:.0f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", nargs="?", type=Path, help="folder made by --prepare")
    parser.add_argument("--prepare", type=Path, metavar="DIR", help="compile here into DIR")
    parser.add_argument("--small", action="store_true", help="tiny shapes (implied on a CPU)")
    parser.add_argument("--budget-s", type=float, default=200.0, help="no compile baseline after")
    args = parser.parse_args()
    where = bootstrap_mlacc()
    if args.prepare is not None:
        info = prepare(args.prepare, args.small)
        print(json.dumps(info, indent=1))
        print(f"\nprepared {args.prepare}: carry it to the GPU machine and run "
              f"`python benchmarks/gpu_suite.py {args.prepare}`")  # fmt: skip
        return
    results = run(args.prepared, args.small, args.budget_s)
    results["mlacc"] = where
    print(json.dumps({k: v for k, v in results.items()}, indent=1, default=str))
    print()
    print(table(results))
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_suite.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
