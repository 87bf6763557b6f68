"""The `llvm` artifact: native code loads without recompiling; a corrupt shared object or one
built for another CPU is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlacc.backends.testing import compile_sample
from mlacc.runtime import load
from mlacc.runtime.artifact import Artifact, read_artifact
from mlacc.runtime.errors import ArtifactError


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("llvm") / "torch_ops.mlacc"
    compile_sample("torch_ops", "llvm", opt_level=0).save(path)
    return path


def _with_payload(path: Path, name: str, data: bytes) -> Artifact:
    art = read_artifact(path)
    art.payload = {**art.payload, name: data}
    return art


def test_manifest_names_the_cpu(saved: Path) -> None:
    art = read_artifact(saved)
    cpu = art.manifest["backend"]["cpu"]
    assert cpu["arch"] and isinstance(cpu["features"], list)
    assert {"model.so", "llvm.json", "linalg.mlir"} <= set(art.payload)


def test_corrupt_shared_object(saved: Path) -> None:
    with pytest.raises(ArtifactError, match="shared object is corrupt"):
        _with_payload(saved, "model.so", b"not an ELF file at all" * 4).load()
    blob = read_artifact(saved).payload["model.so"]
    with pytest.raises(ArtifactError, match="shared object does not load"):
        _with_payload(saved, "model.so", blob[:200]).load()


def test_other_architecture(saved: Path) -> None:
    blob = bytearray(read_artifact(saved).payload["model.so"])
    blob[18:20] = (183).to_bytes(2, "little")  # e_machine: aarch64
    with pytest.raises(ArtifactError, match="built for aarch64"):
        _with_payload(saved, "model.so", bytes(blob)).load()


def test_missing_cpu_feature(saved: Path) -> None:
    art = read_artifact(saved)
    abi = json.loads(art.payload["llvm.json"])
    abi["cpu"]["features"] = [*abi["cpu"]["features"], "amx_fp8_imaginary"]
    with pytest.raises(ArtifactError, match="CPU with amx_fp8_imaginary, which this CPU lacks"):
        _with_payload(saved, "llvm.json", json.dumps(abi).encode()).load()


def test_loads_from_file(saved: Path) -> None:
    exe = load(saved)
    assert exe.target == "llvm"


X, W, Y = (
    "!torch.vtensor<[64,512],f32>",
    "!torch.vtensor<[1024,512],f32>",
    "!torch.vtensor<[64,1024],f32>",
)
LINEAR = f"""func.func @linear(%x: {X}) -> {Y} {{
  %w = "mlacc.weight"() {{key = "w"}} : () -> {W}
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : {X}, {W}, !torch.none -> {Y}
  return %y : {Y}
}}"""


def test_thread_count_reaches_the_code_compiled_in_this_process() -> None:
    """One thread means no pool worker runs the parallel loops, even after a compile in this
    process loaded the JIT's copy of the same pool functions (the code binds its own); one
    thread runs the whole loop on the caller's stack (unoptimized code used to overflow it)."""
    import ctypes

    import torch

    w = torch.randn(1024, 512)
    exe = mlacc_compile(LINEAR, w).load()
    workers = exe.executor.library.lib.mlacc_pool_workers
    workers.restype = ctypes.c_int32
    x = torch.randn(64, 512)
    exe.executor.set_num_threads(1)
    torch.testing.assert_close(exe.run("linear", x), x @ w.T, rtol=1e-4, atol=1e-4)
    assert workers() == 0
    exe.executor.set_num_threads(2)
    torch.testing.assert_close(exe.run("linear", x), x @ w.T, rtol=1e-4, atol=1e-4)
    assert workers() == 1


def mlacc_compile(text: str, w) -> Artifact:
    import mlacc

    return mlacc.compile(text, target="llvm", pipeline="none", weights={"w": w}, opt_level=0)
