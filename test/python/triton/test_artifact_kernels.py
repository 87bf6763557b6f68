"""A `triton` artifact runs the kernel sources it carries (payload/kernels), digest-checked,
and loading fails with one clear line where its kernels cannot run (no GPU, a GPU too old, a
Triton that cannot run it), checked by faking the torch.cuda / Triton queries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tool_helpers import assert_one_error_line, run_tool

import mlacc
from mlacc.backends.testing import compile_sample
from mlacc.runtime.artifact import read_artifact
from mlacc.runtime.errors import ArtifactError, TargetError
from mlacc.runtime.executors import triton as triton_executor
from mlacc.runtime.executors.triton import check_environment
from mlacc.runtime.executors.triton_sources import KERNEL_DIR, payload_sources, sources_digest

# The RMSNorm kernel's output line (runtime/triton/rmsnorm.py); the tampered copy doubles it.
NORM_LINE = "y = round_to(x * inv[:, None] * w[None, :], ROUND)"
TAMPERED = "y = round_to(2.0 * x * inv[:, None] * w[None, :], ROUND)"


@pytest.fixture(scope="module")
def layer_artifact(tmp_path_factory) -> Path:
    """deepseek_v3_layer (RMSNorm, MLA, MoE) compiled for `triton`, saved."""
    art = compile_sample("deepseek_v3_layer", "triton")
    return art.save(tmp_path_factory.mktemp("art") / "layer.mlacc")


def _inputs(exe) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for spec in exe.manifest["entry_points"]["forward"]["inputs"]:
        dtype = getattr(torch, spec["dtype"])
        if dtype.is_floating_point:
            out.append(torch.randn(spec["shape"], generator=gen).to(dtype))
        else:
            out.append(torch.zeros(spec["shape"], dtype=dtype))
    return out


def _tampered(path: Path, out: Path, *, rehash: bool) -> Path:
    art = read_artifact(path)
    name = KERNEL_DIR + "rmsnorm.py"
    source = art.payload[name].decode()
    assert NORM_LINE in source
    art.payload[name] = source.replace(NORM_LINE, TAMPERED).encode()
    if rehash:
        digest = sources_digest(payload_sources(art.payload))
        art.manifest["backend"]["triton"]["kernel_sources_sha256"] = digest
    return art.save(out)


def test_artifact_runs_the_kernel_sources_it_carries(layer_artifact: Path, tmp_path) -> None:
    """A kernel changed in the payload (digest updated) is what runs: RMSNorm doubled."""
    exe = mlacc.runtime.load(layer_artifact)
    package = exe.executor.kernel_package
    assert package.__name__.startswith("mlacc.runtime._triton_kernels_")
    assert Path(package.__file__).parent != Path(mlacc.runtime.__file__).parent / "triton"
    inputs = _inputs(exe)
    with torch.no_grad():
        want = exe.run("forward", *inputs)
    changed = mlacc.runtime.load(_tampered(layer_artifact, tmp_path / "t.mlacc", rehash=True))
    assert changed.executor.kernel_package is not package
    with torch.no_grad():
        got = changed.run("forward", *inputs)
    want = want[0] if isinstance(want, (list, tuple)) else want
    got = got[0] if isinstance(got, (list, tuple)) else got
    assert not torch.allclose(got.float(), want.float(), rtol=1e-3, atol=1e-3)
    # the installed kernels are untouched by it
    from mlacc.runtime.triton import rmsnorm

    assert NORM_LINE in Path(rmsnorm.__file__).read_text()


def test_changed_kernel_source_without_digest_is_one_error(layer_artifact: Path, tmp_path) -> None:
    path = _tampered(layer_artifact, tmp_path / "t.mlacc", rehash=False)
    with pytest.raises(ArtifactError, match="kernel sources do not match their recorded sha256"):
        mlacc.runtime.load(path)
    proc = run_tool("mlacc", "run", str(path))
    assert_one_error_line(proc, "mlacc", "do not match their recorded sha256")


def test_kernel_package_that_fails_to_import_is_one_error(layer_artifact: Path, tmp_path) -> None:
    art = read_artifact(layer_artifact)
    art.payload[KERNEL_DIR + "router.py"] += b"\nimport triton.no_such_module_in_this_triton\n"
    art.manifest["backend"]["triton"]["kernel_sources_sha256"] = sources_digest(
        payload_sources(art.payload)
    )
    with pytest.raises(TargetError, match=r"^the artifact's Triton kernels fail to import"):
        mlacc.runtime.load(art.save(tmp_path / "t.mlacc"))


# ------------------------------------------------------------------------------ environment


class _FakeCuda:
    def __init__(self, available: bool, capability: tuple[int, int] = (9, 0)):
        self.available, self.capability = available, capability

    def install(self, monkeypatch) -> None:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: self.available)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: self.capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def _manifest(min_sm: int = 80, min_version: str = "3.6") -> dict:
    return {"backend": {"triton": {"min_sm": min_sm, "min_version": min_version}}}


def test_no_cuda_gpu_is_one_error(monkeypatch) -> None:
    _FakeCuda(False).install(monkeypatch)
    with pytest.raises(TargetError, match=r"needs an NVIDIA GPU \(no CUDA device found\)"):
        check_environment(_manifest())
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter needs none
    assert check_environment(_manifest()) == torch.device("cpu")


@pytest.mark.parametrize(
    ("capability", "min_sm", "ok"),
    [((7, 5), 80, False), ((8, 0), 80, True), ((8, 0), 89, False), ((8, 9), 89, True)],
)
def test_gpu_older_than_the_artifact_needs_is_one_error(monkeypatch, capability, min_sm, ok):
    _FakeCuda(True, capability).install(monkeypatch)
    sm = capability[0] * 10 + capability[1]
    if ok:
        assert check_environment(_manifest(min_sm)) == torch.device("cuda", 0)
        return
    with pytest.raises(TargetError) as err:
        check_environment(_manifest(min_sm))
    assert str(err.value).startswith(f"GPU 'Fake GPU' (sm_{sm}) is too old for this artifact")
    assert f"need sm_{min_sm} or newer" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("version", ["3.5.1", "2.3.0", "4.0.0"])
def test_triton_that_cannot_run_the_artifact_is_one_error(monkeypatch, version) -> None:
    import triton

    monkeypatch.setattr(triton, "__version__", version)
    with pytest.raises(TargetError, match=rf"^Triton {version} cannot run this artifact"):
        check_environment(_manifest())


def test_fp8_artifact_needs_sm89(monkeypatch) -> None:
    """An FP8 artifact records sm_89 (e4m3 tensor cores), a bf16 one sm_80; an sm_80 GPU
    refuses the FP8 artifact before anything runs."""
    fp8 = compile_sample("fp8_linear", "triton")
    assert fp8.manifest["backend"]["triton"]["min_sm"] == 89
    assert compile_sample("torch_ops", "triton").manifest["backend"]["triton"]["min_sm"] == 80
    _FakeCuda(True, (8, 0)).install(monkeypatch)
    monkeypatch.setattr(triton_executor, "load_kernel_package", pytest.fail)
    with pytest.raises(TargetError, match=r"\(sm_80\) is too old .* need sm_89"):
        fp8.load()


def test_cli_prints_environment_errors_as_one_line(layer_artifact: Path) -> None:
    """`mlacc run` in a process whose Triton reports a version that cannot run the artifact."""
    code = (
        "import sys, triton; triton.__version__ = '3.5.0'; "
        "from mlacc.tools.mlacc_main import main; sys.exit(main())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", str(layer_artifact)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Triton 3.5.0 cannot run this artifact" in proc.stderr
