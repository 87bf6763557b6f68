"""The compile-time sm_90 check of the `triton` target: every distinct kernel launch of the
plan is compiled for sm_90 (no GPU) and its registers and spills land in the manifest and
`mlacc inspect --section sm90`; what cannot be checked is listed with why."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlacc.backends.testing import compile_sample
from mlacc.backends.triton import backend as triton_backend
from mlacc.backends.triton.sm90 import summary

SAMPLE = "deepseek_v3_layer"  # mla.rms_norm and moe.router run as Triton kernels


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh result cache for each test."""
    monkeypatch.setenv("MLACC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sm90"


def test_registers_and_spills_are_in_the_manifest_and_inspect(cache, tmp_path) -> None:
    art = compile_sample(SAMPLE, "triton", sm90_check=True)
    report = art.manifest["backend"]["triton"]["sm90"]
    assert report["arch"] == "sm_90" and report["skipped"] == []
    kernels = {r["kernel"]: r for r in report["launches"]}
    assert {"_rms_norm_kernel", "_router_kernel"} <= set(kernels)
    for r in report["launches"]:
        assert 0 < r["registers"] <= 255 and r["ops"] and r["num_warps"] >= 1
        assert r["spills"] == (r["spill_bytes"] > 0)
    assert kernels["_rms_norm_kernel"]["ops"] == ["mla.rms_norm"]
    assert summary(report).startswith(f"sm_90: {len(report['launches'])} kernel configs compiled")
    # cached by launch, sources, arch and Triton version: the second compile reads it back
    assert len(list(cache.glob("*.json"))) == len(report["launches"])
    again = compile_sample(SAMPLE, "triton", sm90_check=True).manifest["backend"]["triton"]
    assert again["sm90"]["launches"] == report["launches"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlacc.tools.mlacc_main",
            "inspect",
            str(art.save(tmp_path / "a.mlacc")),
            "--section",
            "sm90",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("sm_90 (Triton ")
    assert f"{kernels['_router_kernel']['registers']} regs" in out and "_rms_norm_kernel" in out


def test_a_stack_frame_is_not_reported_as_a_spill(cache) -> None:
    """libdevice's sin/cos keep a stack frame for their range reduction in `_rotary_kernel`
    (cuobjdump: STACK 32) without a register spill (ptxas -v: 0 bytes spill stores/loads)."""
    report = compile_sample("latent_attention", "triton", sm90_check=True)
    report = report.manifest["backend"]["triton"]["sm90"]
    framed = [r for r in report["launches"] if r["kernel"] == "_rotary_kernel" and r["stack_bytes"]]
    assert framed, report["launches"]
    assert all(r["spill_bytes"] == 0 and not r["spills"] for r in framed)
    assert summary(report).endswith("spills: none")


SPILL_PROBE = """
import torch
from mlacc.backends.triton.sm90 import _spill_bytes
from mlacc.runtime.executors.triton_binaries import compile_only
from mlacc.runtime.triton import attention as A
from mlacc.runtime.triton._attention_aot import compile_launch

def t(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")

with compile_only(90) as session:
    for warps in (4, 8):  # fp32, 64 rows x 64 slots x latent 32: spills at 4 warps, not at 8
        (launch, *_), _ = A.plan_latent_attention(
            t(1, 16, 4, 32), t(1, 16, 4, 8), t(1, 256, 40), t(1, 16, dtype=torch.int64),
            t(256, 4), t(256, 4), None, None, kv_lora_rank=32, softmax_scale=0.1,
            rope_layout="interleaved", config=A.LatentConfig(64, 64, 1, warps, 2))
        kernel = compile_launch(launch, session)
        options = {"num_warps": launch.num_warps, "num_stages": launch.num_stages}
        print(warps, _spill_bytes(kernel.src, session.target, options))
"""


@pytest.mark.slow
def test_spill_bytes_come_from_ptxas() -> None:
    """A tile too big for its warps spills (ptxas counts the bytes); with twice the warps the
    same tile does not."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", SPILL_PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    spilled = dict(line.split() for line in out.splitlines() if line[:1].isdigit())
    assert int(spilled["4"]) > 0 and int(spilled["8"]) == 0, out


def test_inspect_reads_reports_from_before_spill_bytes(capsys) -> None:
    """Artifacts compiled before ptxas' spill counts were read have no ``spill_bytes``: their
    stack frame is printed as the spill it was reported as."""
    from types import SimpleNamespace

    from mlacc.tools.mlacc_main import _print_sm90

    old = {"kernel": "_rotary_kernel", "ops": ["mla.rotary_embedding"], "blocks": {}}
    old.update(num_warps=4, num_stages=3, registers=21, stack_bytes=32, local_bytes=0)
    old.update(shared_bytes=0, spills=True)
    report = {"arch": "sm_90", "triton": "3.9.0", "launches": [old], "skipped": []}
    manifest = {"backend": {"triton": {"sm90": report}}}
    art = SimpleNamespace(target="triton", manifest=manifest, payload={})
    _print_sm90(art)
    assert "SPILLS 32 B, 32 B stack frame" in capsys.readouterr().out


def test_a_kernel_that_fails_to_compile_is_listed_not_hidden(cache, monkeypatch) -> None:
    sources = triton_backend.kernel_sources()
    text = sources["rmsnorm.py"].decode()
    anchor = "    cols = tl.arange(0, BLOCK)\n"
    assert anchor in text
    forced = anchor + '    tl.static_assert(BLOCK < 0, "forced compile failure")\n'
    sources["rmsnorm.py"] = text.replace(anchor, forced, 1).encode()
    monkeypatch.setattr(triton_backend, "kernel_sources", lambda: dict(sources))
    report = compile_sample(SAMPLE, "triton", sm90_check=True).manifest["backend"]["triton"]
    report = report["sm90"]
    compiled = {r["kernel"] for r in report["launches"]}
    assert "_router_kernel" in compiled and "_rms_norm_kernel" not in compiled
    (skip,) = report["skipped"]
    assert skip["kernel"] == "_rms_norm_kernel" and skip["ops"] == ["mla.rms_norm"]
    assert "CompilationError" in skip["reason"] or "forced" in skip["reason"], skip
    assert "1 not checked" in summary(report)


def test_time_budget_and_off_switch_are_reported(cache) -> None:
    report = compile_sample(SAMPLE, "triton", sm90_check=True, sm90_budget_s=0.001)
    report = report.manifest["backend"]["triton"]["sm90"]
    assert report["launches"] == [] and report["skipped"]
    assert all("time budget" in s["reason"] for s in report["skipped"])
    assert not list(cache.glob("*.json"))  # budget misses are not cached
    off = compile_sample(SAMPLE, "triton", sm90_check=False).manifest["backend"]["triton"]
    assert "sm90_check=False" in off["sm90"]["off"]
