"""The backend conformance suite: what every target, in-tree or plug-in, must pass.

Subclass `BackendConformance` in a pytest file and name the target::

    from mlacc.backends.testing import BackendConformance

    class TestMyTarget(BackendConformance):
        target = "my-target"

The suite compiles the sample programs (`samples.SAMPLES`) the target supports, saves and
reloads the artifacts, checks every output against the `reference` target, checks that
unsupported ops and bad inputs fail with one clear error, and runs an artifact in a
process where `torch_mlir` cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from ...dialects import make_context
from ...dialects._mlir import ir
from ...dialects.parsing import module_text
from ...runtime import load
from ...runtime.errors import ArtifactError, InputError, UnsupportedOpError
from ...runtime.synthetic import synthetic_inputs, synthetic_weights
from ..registry import get_backend
from .samples import SAMPLES

__all__ = ["SAMPLES", "BackendConformance", "compile_sample"]

# An op no target supports: torch-mlir's escape hatch for ops it could not import.
OPAQUE_OP_MODULE = """
func.func @forward(%x: !torch.vtensor<[2,3],f32>) -> !torch.vtensor<[2,3],f32> {
  %0 = torch.operator "torch.mlacc.not_a_real_op"(%x)
    : (!torch.vtensor<[2,3],f32>) -> !torch.vtensor<[2,3],f32>
  return %0 : !torch.vtensor<[2,3],f32>
}
"""


def sample_text(name: str) -> str:
    """MLIR text of sample `name`."""
    with make_context():
        return module_text(SAMPLES[name]())


def unsupported_ops(target: str, mlir: str) -> list[str]:
    """Op names in `mlir` that `target` does not support."""
    backend = get_backend(target)
    names: list[str] = []
    with make_context():
        module = ir.Module.parse(mlir)

        def visit(op: ir.Operation) -> ir.WalkResult:
            if op.name not in (
                "builtin.module",
                "func.func",
                "func.return",
            ) and not backend.supports(op.name):
                names.append(op.name)
            return ir.WalkResult.ADVANCE

        module.operation.walk(visit)
    return names


def compile_sample(name: str, target: str, **options: Any):
    """Compiles sample `name` for `target` with deterministic weights; returns the artifact."""
    import mlacc

    text = sample_text(name)
    specs = mlacc.compile(text, target="reference", pipeline="none", timing_only=True)
    weights = synthetic_weights(specs.manifest["weights"]["tensors"])
    return mlacc.compile(text, target=target, pipeline="none", weights=weights, **options)


class BackendConformance:
    """pytest mix-in: set `target` (and, if needed, tolerances and compile options)."""

    target: ClassVar[str] = ""
    rtol: ClassVar[float] = 1e-4
    atol: ClassVar[float] = 1e-5
    compile_options: ClassVar[dict[str, Any]] = {}

    def _supported(self) -> list[str]:
        return [n for n in SAMPLES if not unsupported_ops(self.target, sample_text(n))]

    def test_target_is_installed(self) -> None:
        backend = get_backend(self.target)
        assert backend.name == self.target
        assert backend.executor, "a backend must name its run-side executor"

    def test_supports_some_sample(self) -> None:
        assert self._supported(), f"target '{self.target}' supports none of the samples"

    @pytest.mark.parametrize("sample", list(SAMPLES))
    def test_round_trip_and_numerics(self, sample: str, tmp_path: Path) -> None:
        if unsupported_ops(self.target, sample_text(sample)):
            pytest.skip(f"'{self.target}' does not support sample '{sample}'")
        art = compile_sample(sample, self.target, **self.compile_options)
        path = art.save(tmp_path / f"{sample}.mlacc")
        exe = load(path)
        assert exe.target == self.target
        reference = compile_sample(sample, "reference").load()
        for entry, signature in exe.entry_points.items():
            inputs = synthetic_inputs(signature["inputs"])
            got = _flat(exe.run(entry, *inputs))
            want = _flat(reference.run(entry, *inputs))
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype
                torch.testing.assert_close(g, w, rtol=self.rtol, atol=self.atol)

    @pytest.mark.parametrize("sample", list(SAMPLES))
    def test_unsupported_sample_fails_at_compile_time(self, sample: str) -> None:
        missing = unsupported_ops(self.target, sample_text(sample))
        if not missing:
            pytest.skip(f"'{self.target}' supports every op of '{sample}'")
        with pytest.raises(
            UnsupportedOpError,
            match=rf"op '{missing[0]}' is not supported by target '{self.target}'",
        ):
            compile_sample(sample, self.target, **self.compile_options)

    def test_opaque_op_is_rejected_with_its_name(self) -> None:
        import mlacc

        with pytest.raises(UnsupportedOpError, match=r"'torch.operator' .*supported by: none"):
            mlacc.compile(
                OPAQUE_OP_MODULE, target=self.target, pipeline="none", **self.compile_options
            )

    def test_bad_inputs(self, tmp_path: Path) -> None:
        sample = self._supported()[0]
        exe = load(
            compile_sample(sample, self.target, **self.compile_options).save(tmp_path / "a.mlacc")
        )
        entry, signature = next(iter(exe.entry_points.items()))
        inputs = synthetic_inputs(signature["inputs"])
        with pytest.raises(InputError, match="takes"):
            exe.run(entry, *inputs[:-1])
        wrong_shape = [
            torch.zeros(*[d + 1 for d in inputs[0].shape], dtype=inputs[0].dtype),
            *inputs[1:],
        ]
        with pytest.raises(InputError, match="expected"):
            exe.run(entry, *wrong_shape)
        wrong_dtype = [inputs[0].to(torch.float64), *inputs[1:]]
        with pytest.raises(InputError, match="float64"):
            exe.run(entry, *wrong_dtype)

    def test_corrupt_artifact(self, tmp_path: Path) -> None:
        sample = self._supported()[0]
        path = compile_sample(sample, self.target, **self.compile_options).save(
            tmp_path / "a.mlacc"
        )
        data = path.read_bytes()
        truncated = tmp_path / "truncated.mlacc"
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(ArtifactError):
            load(truncated)

    def test_runs_without_torch_mlir(self, tmp_path: Path) -> None:
        sample = self._supported()[0]
        path = compile_sample(sample, self.target, **self.compile_options).save(
            tmp_path / "a.mlacc"
        )
        out = run_without_torch_mlir(path)
        assert "ok" in out


def run_without_torch_mlir(path: Path) -> str:
    """Loads and runs `path` in a subprocess where importing `torch_mlir` fails."""
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch_mlir" or name.startswith("torch_mlir."):
                    raise ImportError("torch_mlir is blocked in this process")
        sys.meta_path.insert(0, Block())
        import mlacc.runtime
        from mlacc.runtime.synthetic import synthetic_inputs
        exe = mlacc.runtime.load({str(path)!r})
        for entry, sig in exe.entry_points.items():
            exe.run(entry, *synthetic_inputs(sig["inputs"]))
        assert not any(m.startswith("torch_mlir") for m in sys.modules), "torch_mlir was imported"
        print("ok")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _flat(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]
