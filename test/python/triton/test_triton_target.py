"""The `triton` target end to end: real DeepSeek structures match the reference target, the
fusions and PyTorch fallbacks are recorded, load fails with one line where the kernels cannot
run, and the kernels compile for a real sm_90 GPU (ahead of time, no GPU needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from compiled_models import BATCH, CACHE, CHUNK, model
from model_runs import rel_err

import mlacc
from mlacc.backends.testing import compile_sample
from mlacc.runtime.errors import TargetError
from mlacc.runtime.executors.triton import check_environment
from mlacc.runtime.generate import Runner

MODELS = ["reference-v3", "reference-v2", "hf-v3", "hf-v2", "public"]


def _logits(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else (out[0] if isinstance(out, tuple) else out)


def _prompts(lengths: list[int], vocab: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=gen) for n in lengths]


def _vocab(exe) -> int:
    return exe.entry_points["prefill"]["outputs"][0]["shape"][-1]


def cached_logits(exe, prompts: list[torch.Tensor], steps: int) -> torch.Tensor:
    """Logits after each prompt's chunked prefill, then after `steps` decode steps (token 1,
    2, ...), over the runtime's cache: ``[steps + 1, len(prompts), vocab]``."""
    runner = Runner(exe, exe.new_cache())
    out = [runner.prefill(prompts)]
    for t in range(steps):
        out.append(runner.decode([t + 1] * len(prompts)))
    return torch.stack(out)


@pytest.mark.parametrize("name", MODELS)
def test_model_matches_reference(name: str, compiled) -> None:
    """forward, and chunked prefill + decode over the runtime's cache: within 1e-4 (fp32) of
    the reference target on the same graph."""
    tri, ref, art = compiled(name)
    kw = {"use_cache": False} if name.startswith("hf") else {}
    ids = torch.randint(0, _vocab(tri), (BATCH, CHUNK), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert rel_err(_logits(tri(ids, **kw)), _logits(ref(ids, **kw))) < 1e-4
    prompts = _prompts([CHUNK + 3, 4], _vocab(tri))  # the first one spans two chunks
    got = cached_logits(tri, prompts, 1)
    assert rel_err(got, cached_logits(ref, prompts, 1)) < 1e-4
    info = art.manifest["backend"]["triton"]
    # the MoE layers run grouped and fused (moe-group-experts + the target's plan fusions):
    # the router writes the merged shared experts' columns, the kv norm runs in the cache write
    fused = info["fused"]
    assert fused.get("triton.grouped_matmul_swiglu", 0) > 0 and fused.get("triton.router_shared")
    assert fused.get("triton.norm_cache_update", 0) > 0 and info["kernels"].get("mla.rms_norm")


# --------------------------------------------------------------------------------------------
# the serving contract (docs/execution-contract.md) on `triton`: mlacc's deepseek-v3-tiny


@pytest.fixture(scope="module")
def reference_v3() -> mlacc.runtime.Executable:
    """deepseek-v3-tiny compiled for the `reference` target (contiguous cache)."""
    example = torch.zeros(BATCH, CHUNK, dtype=torch.int64)
    art = mlacc.compile(model("reference-v3"), (example,), target="reference", cache_len=CACHE)
    return art.load()


def _left_padded(prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :], mask[row, width - len(p) :] = p, 1
    return ids, mask


@pytest.mark.parametrize("block_size", [None, 8], ids=["contiguous", "paged"])
def test_ragged_generate_matches_reference(block_size, compiled, reference_v3) -> None:
    """A left-padded batch whose longest prompt spans two prefill chunks generates, token for
    token, what the reference target generates."""
    tri, _, art = compiled("reference-v3", block_size=block_size)
    assert art.manifest["kv_cache"].get("layout", "contiguous") == (
        "paged" if block_size else "contiguous"
    )
    ids, mask = _left_padded(_prompts([CHUNK + 3, 2, 6], _vocab(tri), seed=1))
    got = tri.generate(ids, 3, attention_mask=mask)
    assert tri.last_generation.prefill_calls == 2  # chunked, never token by token
    assert torch.equal(got, reference_v3.generate(ids, 3, attention_mask=mask))


def test_donated_decode_is_in_place_and_value_calls_are_not(compiled) -> None:
    """The plan donates the caches: decode returns the very buffers passed in, written by the
    Triton cache kernel; with the in-place switch off (value semantics) the inputs stay as
    they were and new buffers come back."""
    tri, _, art = compiled("reference-v3")
    layers = art.manifest["kv_cache"]["layers"]
    assert art.payload_json("plan.json")["functions"]["decode"]["donated"]
    caches = tri.new_cache().inputs("decode")
    tokens, positions = torch.tensor([[3]] * BATCH), torch.tensor([[5]] * BATCH)
    out = tri.run("decode", tokens, positions, *caches)
    assert all(o is c for o, c in zip(out[-layers:], caches))
    assert all(bool(c[:, 5].abs().sum(-1).gt(0).all()) for c in caches)
    before = [c.clone() for c in caches]
    tri.in_place_cache = False
    try:
        out = tri.run("decode", tokens, positions + 1, *caches)
    finally:
        tri.in_place_cache = True
    assert not any(o is c for o, c in zip(out[-layers:], caches))
    assert all(torch.equal(c, b) for c, b in zip(caches, before))
    assert all(bool(o[:, 6].abs().sum(-1).gt(0).all()) for o in out[-layers:])


# fp8 (per-token activation codes, 128x128 weight blocks): both targets quantize alike (the
# Triton encoder is bit-exact), but fp32 sums in another order can move an activation across
# an fp8 rounding boundary, which the next layer amplifies; 1e-2 relative bounds that.
FP8_TOL = 1e-2


def test_fp8_matches_the_reference_fp8_artifact(compiled) -> None:
    tri, _, art = compiled("reference-v3", fp8=True)
    assert art.manifest["backend"]["triton"]["kernels"].get("fp8.matmul", 0) > 0
    example = torch.zeros(BATCH, CHUNK, dtype=torch.int64)
    ref = mlacc.compile(
        model("reference-v3"), (example,), target="reference", fp8=True, cache_len=CACHE
    ).load()
    prompts = _prompts([6, 3], _vocab(tri), seed=2)
    assert rel_err(cached_logits(tri, prompts, 1), cached_logits(ref, prompts, 1)) < FP8_TOL


def test_fallbacks_are_listed(tmp_path: Path) -> None:
    """Every step without a Triton kernel (here the un-decomposed `mla.attention` and
    `moe.experts` of the layer sample, its adds and views) is in the manifest, in the compile
    summary (compute and views apart) and in `mlacc inspect`."""
    lines: list[str] = []
    art = compile_sample("deepseek_v3_layer", "triton", progress=lines.append)
    listed = {f["op"]: f for f in art.manifest["backend"]["fallbacks"]}
    kernels = art.manifest["backend"]["triton"]["kernels"]
    plan_ops = {
        s["op"] for f in art.payload_json("plan.json")["functions"].values() for s in f["steps"]
    }
    assert plan_ops - {"mlacc.weight"} == set(listed) | set(kernels)
    assert not set(listed) & set(kernels)
    assert {"mla.attention", "moe.experts", "torch.aten.view"} <= set(listed)
    assert listed["mla.attention"]["per_call"] == 1 and listed["mla.attention"]["locations"]
    (summary,) = [line for line in lines if line.startswith("triton: ")]
    compute, views = summary.split("PyTorch per call: compute ")[1].split("; views ")
    assert "mla.attention x1" in compute and "moe.experts x1" in compute
    assert views == f"torch.aten.view x{listed['torch.aten.view']['per_call']}"
    path = art.save(tmp_path / "a.mlacc")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlacc.tools.mlacc_main",
            "inspect",
            str(path),
            "--section",
            "fallbacks",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for op in listed:
        assert op in out


# Ops that got Triton kernels (runtime/triton/heads.py, rotary.py, embedding.py, moe.mlp).
FORMER_FALLBACKS = {
    "mla.absorb_query",
    "mla.absorb_output",
    "mla.kv_expand",
    "mla.rotary_embedding",
    "moe.mlp",
    "torch.aten.embedding",
}


@pytest.mark.parametrize("name", ["reference-v3", "hf-v2"])
def test_fallbacks_per_call_are_views(name: str, compiled) -> None:
    """The PyTorch fallbacks left per call in real model structures are views (the rest run
    once, on weights); the MLA projections, RoPE, the dense MLP and the embedding run as Triton
    kernels, the shared experts' columns, the kv norm and MTP's ``cat`` of its two norms
    inside fused kernels."""
    from mlacc.backends.triton.backend import LAYOUT_OPS

    _, _, art = compiled(name)
    listed = {f["op"]: f for f in art.manifest["backend"]["fallbacks"]}
    per_call = {op for op, f in listed.items() if f["per_call"]}
    assert per_call <= LAYOUT_OPS, sorted(per_call)
    assert all(listed[op]["kind"] == "layout" for op in per_call)
    assert "torch.aten.new_full" not in listed
    mtp = art.manifest["backend"]["triton"]["fused"].get("triton.rms_norm_cat", 0)
    assert mtp == (2 if name == "reference-v3" else 0)  # draft + draft_prefill
    kernels = art.manifest["backend"]["triton"]["kernels"]
    assert not FORMER_FALLBACKS & set(listed)
    assert {"mla.absorb_query", "torch.aten.embedding"} <= set(kernels)


def test_grouped_moe_sample_is_fused() -> None:
    art = compile_sample("grouped_moe", "triton")
    info = art.manifest["backend"]["triton"]
    assert info["fused"] == {
        "triton.grouped_matmul_swiglu": 1,
        "triton.grouped_matmul_weighted": 1,
    }
    ops = [s["op"] for s in art.payload_json("plan.json")["functions"]["forward"]["steps"]]
    assert "moe.swiglu" not in ops and "moe.combine" not in ops
    assert art.manifest["backend"]["fallbacks"] == []  # every step is a Triton kernel
    unfused = compile_sample("grouped_moe", "triton", fuse=False)
    assert unfused.manifest["backend"]["triton"]["fused"] == {}


def test_load_errors_are_one_line() -> None:
    manifest = {"backend": {"triton": {"min_version": "3.99", "compiled_with": "3.99.0"}}}
    with pytest.raises(TargetError, match=r"^Triton 3\.\d+\.\d+ cannot run this artifact"):
        check_environment(manifest)
    manifest = {"backend": {"triton": {"min_version": "2.1"}}}
    with pytest.raises(TargetError, match="cannot run this artifact"):
        check_environment(manifest)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_no_gpu_without_interpreter_is_one_clear_error(tmp_path: Path) -> None:
    path = compile_sample("torch_ops", "triton").save(tmp_path / "a.mlacc")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "mlacc.tools.mlacc_main", "run", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode != 0
    assert "needs an NVIDIA GPU (no CUDA device found); set TRITON_INTERPRET=1" in proc.stderr
    assert "Traceback" not in proc.stderr


AOT = textwrap.dedent("""
    import os, subprocess, triton
    from triton.compiler import ASTSource
    from triton.backends.compiler import GPUTarget
    from mlacc.runtime.triton import fp8, gemm, moe, rmsnorm, router

    def build(fn, ptrs, consts, warps=4, stages=3):
        sig = {n: "constexpr" if n in consts else ptrs.get(n, "i32") for n in fn.arg_names}
        consts = {(fn.arg_names.index(n),): v for n, v in consts.items()}
        src = ASTSource(fn, sig, constexprs=consts)
        c = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                           options={"num_warps": warps, "num_stages": stages})
        path = os.path.join(os.environ["OUT"], fn.__name__ + ".cubin")
        open(path, "wb").write(c.asm["cubin"])
        tool = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
        res = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True).stdout
        spill = [w for w in res.split() if w.startswith("STACK:")]
        print(fn.__name__, spill)
        assert "STACK:0" in res, res

    gemm_ptrs = {"x_ptr": "*fp8e4nv", "w_ptr": "*fp8e4nv", "out_ptr": "*bf16",
                 "offsets_ptr": "*i64", "bias_ptr": "*fp32", "row_weight_ptr": "*fp32",
                 "xs_ptr": "*fp32", "ws_ptr": "*fp32"}
    build(gemm._gemm_kernel, gemm_ptrs, dict(GROUPED=True, SWIGLU=True, HAS_BIAS=False,
          ROW_WEIGHT=False, FP8=True, SCALE_BN=128, ROUND_Y=1, UPCAST=False, PRECISION="tf32",
          BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, BLOCK_E=512), warps=8)
    build(router._router_kernel, {"x_ptr": "*bf16", "w_ptr": "*fp32", "bias_ptr": "*fp32",
          "weights_ptr": "*fp32", "indices_ptr": "*i64", "route_scale": "fp32"},
          dict(SIGMOID=True, HAS_BIAS=True, N_GROUPS=8, TOPK_GROUP=4, TOP2_SUM=True, TOP_K=8,
               NORM=True, N_SHARED=1, SHARED_FIRST=256, SHARED_WEIGHT=1.0, BLOCK_T=16,
               BLOCK_D=32, BLOCK_E=256, BLOCK_G=8, BLOCK_K=16), warps=8)
    build(rmsnorm._rms_norm_kernel, {"x_ptr": "*bf16", "res_ptr": "*bf16", "w_ptr": "*bf16",
          "out_ptr": "*bf16", "res_out_ptr": "*bf16", "eps": "fp32"},
          dict(HAS_RESIDUAL=True, ROUND=1, BLOCK=8192, ROWS=1), warps=16)
    build(fp8._quantize_kernel, {"x_ptr": "*bf16", "q_ptr": "*u8", "s_ptr": "*fp32"},
          dict(BR=1, BC=128, POW2=False, TR=16, TC=128, PER_ROW=True))
    build(moe._align_kernel, {"idx_ptr": "*i64", "rows_ptr": "*i64", "offsets_ptr": "*i64",
          "pair_of_row_ptr": "*i32"}, dict(BLOCK=16, BLOCK_E=512), warps=16)
    build(moe._gather_rows_kernel, {"x_ptr": "*bf16", "pair_of_row_ptr": "*i32",
          "out_ptr": "*bf16"}, dict(BLOCK_D=1024))
""")


def test_kernels_compile_for_sm90_without_spills(tmp_path: Path) -> None:
    """The real compiler (not the interpreter) accepts the kernels for an H100/H200, at
    DeepSeek-V3 launch configurations, without register spills (cuobjdump -res-usage)."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "OUT": str(tmp_path)}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", AOT], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
