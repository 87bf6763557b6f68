"""Artifact format v1: round trip, atomic save, and every defect as one clear ArtifactError."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

import mlacc
from mlacc.runtime.artifact import FORMAT_VERSION, Artifact, read_artifact
from mlacc.runtime.errors import ArtifactError, InputError, TargetError


def _rewrite(src: Path, dst: Path, **replace: bytes) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(
                name, replace.get(name.replace(".", "_").replace("/", "_"), zin.read(name))
            )
    return dst


def test_round_trip_keeps_every_section(torch_ops_artifact: Path) -> None:
    art = read_artifact(torch_ops_artifact)
    assert art.manifest["format_version"] == FORMAT_VERSION
    assert art.manifest["target"] == "reference"
    assert set(art.weights) == {"w", "b"}
    assert "torch.aten.mm" in art.mlir
    assert "plan.json" in art.payload
    sig = art.manifest["entry_points"]["forward"]
    assert sig["inputs"] == [{"name": "arg0", "shape": [4, 16], "dtype": "float32"}]
    x = torch.randn(4, 16)
    want = torch.tanh(x @ art.weights["w"] + art.weights["b"])
    torch.testing.assert_close(mlacc.runtime.load(torch_ops_artifact)(x), want)
    torch.testing.assert_close(art.load()(x), want)


def test_loading_never_unpickles(torch_ops_artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("artifact loading must not unpickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    mlacc.runtime.load(torch_ops_artifact)(torch.randn(4, 16))


def test_truncated_file(torch_ops_artifact: Path, tmp_path: Path) -> None:
    bad = tmp_path / "t.mlacc"
    bad.write_bytes(torch_ops_artifact.read_bytes()[:300])
    with pytest.raises(ArtifactError, match="not an mlacc artifact, or truncated"):
        mlacc.runtime.load(bad)


def test_corrupt_member_fails_its_checksum(torch_ops_artifact: Path, tmp_path: Path) -> None:
    data = bytearray(torch_ops_artifact.read_bytes())
    start = data.find(b"torch.aten.mm")
    data[start : start + 5] = b"XXXXX"
    bad = tmp_path / "c.mlacc"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="fails its checksum"):
        mlacc.runtime.load(bad)


@pytest.mark.parametrize("field", ["compression", "encrypted"])
def test_corrupt_member_header(torch_ops_artifact: Path, tmp_path: Path, field: str) -> None:
    """A member whose central-directory entry names an unknown compression method or says it
    is encrypted (found by the fuzz campaign) is one clear error, not an internal one."""
    data = bytearray(torch_ops_artifact.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the first central-directory entry
    if field == "compression":
        data[entry + 10 : entry + 12] = (99).to_bytes(2, "little")
    else:
        data[entry + 8] |= 0x01
    bad = tmp_path / f"{field}.mlacc"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="not an mlacc artifact, or truncated/corrupt"):
        mlacc.runtime.load(bad)


def test_not_an_artifact(tmp_path: Path) -> None:
    bad = tmp_path / "n.mlacc"
    bad.write_text("hello")
    with pytest.raises(ArtifactError, match="not an mlacc artifact"):
        mlacc.runtime.load(bad)
    with pytest.raises(ArtifactError, match="no such artifact file"):
        mlacc.runtime.load(tmp_path / "missing.mlacc")


def test_unknown_format_version(torch_ops_artifact: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(torch_ops_artifact).read("manifest.json"))
    manifest["format_version"] = FORMAT_VERSION + 1
    bad = _rewrite(
        torch_ops_artifact, tmp_path / "v.mlacc", manifest_json=json.dumps(manifest).encode()
    )
    with pytest.raises(ArtifactError, match=r"format version 2 is newer than .* \(1\)"):
        mlacc.runtime.load(bad)


def test_corrupt_manifest_and_weights(torch_ops_artifact: Path, tmp_path: Path) -> None:
    bad = _rewrite(torch_ops_artifact, tmp_path / "m.mlacc", manifest_json=b"{not json")
    with pytest.raises(ArtifactError, match="corrupt manifest"):
        mlacc.runtime.load(bad)
    bad = _rewrite(torch_ops_artifact, tmp_path / "w.mlacc", weights_safetensors=b"\x00" * 16)
    with pytest.raises(ArtifactError, match=r"corrupt weights\.safetensors"):
        mlacc.runtime.load(bad)
    bad = _rewrite(torch_ops_artifact, tmp_path / "p.mlacc", payload_plan_json=b"[1, 2")
    with pytest.raises(ArtifactError, match=r"plan\.json' is not valid JSON"):
        mlacc.runtime.load(bad)


def test_target_not_installed(torch_ops_artifact: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(torch_ops_artifact).read("manifest.json"))
    manifest["executor"] = "vendor-npu"
    bad = _rewrite(
        torch_ops_artifact, tmp_path / "x.mlacc", manifest_json=json.dumps(manifest).encode()
    )
    with pytest.raises(TargetError, match="executor 'vendor-npu' is not installed"):
        mlacc.runtime.load(bad)


def test_wrong_inputs_at_call_time(torch_ops_artifact: Path) -> None:
    exe = mlacc.runtime.load(torch_ops_artifact)
    with pytest.raises(
        InputError,
        match=r"input 0 \('arg0'\) of 'forward' is float32\[4,15\], expected float32\[4,16\]",
    ):
        exe(torch.randn(4, 15))
    with pytest.raises(InputError, match=r"is float64\[4,16\], expected float32\[4,16\]"):
        exe(torch.randn(4, 16, dtype=torch.float64))
    with pytest.raises(InputError, match="takes 1 input"):
        exe(torch.randn(4, 16), torch.randn(1))
    with pytest.raises(InputError, match="must be a tensor"):
        exe([1, 2])
    with pytest.raises(InputError, match="no entry point 'decode'"):
        exe.run("decode", torch.randn(4, 16))


def test_save_is_atomic(
    torch_ops_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = read_artifact(torch_ops_artifact)
    target = tmp_path / "out.mlacc"
    target.write_bytes(b"previous contents")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail)
    with pytest.raises(OSError, match="disk full"):
        art.save(target)
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mlacc"]


def test_timing_only_artifact_has_no_weight_data(tmp_path: Path) -> None:
    from mlacc.backends.testing import sample_text

    art = mlacc.compile(
        sample_text("torch_ops"), target="reference", pipeline="none", timing_only=True
    )
    path = art.save(tmp_path / "t.mlacc")
    with zipfile.ZipFile(path) as zf:
        assert "weights.safetensors" not in zf.namelist()
    loaded = read_artifact(path)
    assert loaded.manifest["weights"]["present"] is False
    assert loaded.manifest["weights"]["tensors"]["w"] == {"shape": [16, 8], "dtype": "float32"}
    assert isinstance(loaded, Artifact)
    with pytest.raises(ArtifactError, match=r"timing-only .* needs weights"):
        mlacc.runtime.load(path)


def test_weight_only_steps_run_once_per_entry_point() -> None:
    """A weight-only step (the dequantized FP8 weight the sample returns) runs on the first
    call only; the weight itself is stored in FP8 (never quantized at run time) and every call
    quantizes its activations."""
    from collections import Counter

    from mlacc.backends.testing import compile_sample
    from mlacc.runtime.synthetic import synthetic_inputs

    exe = compile_sample("fp8_linear", "reference").load()
    inputs = synthetic_inputs(exe.entry_points["forward"]["inputs"])
    interpreter = exe.executor.interpreter
    calls: Counter = Counter()
    kernels = dict(interpreter.kernels)

    def counting(name):
        def kernel(*args, **kwargs):
            calls[name] += 1
            return kernels[name](*args, **kwargs)

        return kernel

    interpreter.kernels = {name: counting(name) for name in kernels}
    first = exe(*inputs)
    assert (calls["fp8.quantize"], calls["fp8.dequantize"]) == (1, 1)
    second = exe(*inputs)
    assert (calls["fp8.quantize"], calls["fp8.dequantize"]) == (2, 1)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_weights_that_share_memory_are_saved_as_copies(torch_ops_artifact: Path, tmp_path) -> None:
    """A backend's prepared weight may be a view of a model weight (the llvm target's are)."""
    art = read_artifact(torch_ops_artifact)
    key, value = next(iter(art.weights.items()))
    art.weights[f"{key}.view"] = value.view(-1)[: value.numel()]
    art.manifest["weights"]["tensors"][f"{key}.view"] = {
        "shape": [value.numel()],
        "dtype": str(value.dtype).removeprefix("torch."),
    }
    path = art.save(tmp_path / "shared.mlacc")
    again = read_artifact(path)
    assert torch.equal(again.weights[f"{key}.view"], value.reshape(-1))
