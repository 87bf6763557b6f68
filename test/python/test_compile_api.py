"""`mlacc.compile` from Python: pipelines, IR dumps, and failures that leave a reproducer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

import mlacc
from mlacc.backends import Backend, CompileRequest, Payload, register
from mlacc.backends.testing import compile_sample, sample_text
from mlacc.runtime.errors import CompileError
from mlacc.runtime.synthetic import synthetic_inputs


def test_default_pipeline_keeps_numerics() -> None:
    base = compile_sample("deepseek_v3_layer", "reference")
    art = mlacc.compile(sample_text("deepseek_v3_layer"), target="reference", weights=base.weights)
    from mlacc.compiler import DEFAULT_PIPELINE

    assert art.manifest["pipeline"] == DEFAULT_PIPELINE
    assert DEFAULT_PIPELINE.split(",")[:3] == [
        "mla-absorb-weights",
        "mla-fuse-rope",
        "moe-group-experts",
    ]
    inputs = synthetic_inputs(art.manifest["entry_points"]["forward"]["inputs"])
    torch.testing.assert_close(art.load()(*inputs), base.load()(*inputs), rtol=1e-5, atol=1e-6)


def test_print_ir_after_all_to_a_directory(tmp_path: Path) -> None:
    art = compile_sample("torch_ops", "reference")
    mlacc.compile(
        sample_text("torch_ops"),
        target="reference",
        weights=art.weights,
        pipeline="canonicalize,cse",
        print_ir_after_all=tmp_path / "ir",
    )
    dumps = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert len(dumps) == 2 and "canonicalize" in dumps[0] and "cse" in dumps[1]
    assert "torch.aten.mm" in (tmp_path / "ir" / dumps[1]).read_text()


def test_failing_pass_names_location_and_writes_reproducer(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as info:
        mlacc.compile(
            sample_text("deepseek_v3_layer"),
            target="reference",
            timing_only=True,
            pipeline="cse,test-fail-on{op=moe.router}",
            repro_dir=tmp_path,
        )
    first, *notes = str(info.value).splitlines()
    assert first.startswith("samples.py:1:1: ") and "moe.router" in first
    repro = tmp_path / "mlacc-repro-test-fail-on.mlir"
    assert repro.is_file() and '"moe.router"' in repro.read_text()
    command = notes[-1].removeprefix("note: reproduce with: ")
    assert command.startswith("mlacc-opt ") and "test-fail-on" in command
    proc = subprocess.run(
        command, shell=True, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1 and "moe.router" in proc.stderr


def test_unknown_pass_is_a_compile_error() -> None:
    with pytest.raises(CompileError, match="no-such-pass"):
        mlacc.compile(
            sample_text("torch_ops"), target="reference", timing_only=True, pipeline="no-such-pass"
        )


class _ExplodingBackend(Backend):
    name = "exploding"
    executor = "reference"
    description = "test backend whose lowering fails"

    def supports(self, op_name: str) -> bool:
        return True

    def compile(self, module, request: CompileRequest) -> Payload:
        raise RuntimeError("tile larger than SRAM")


def test_failing_lowering_writes_reproducer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlacc.backends import registry

    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    register("exploding", _ExplodingBackend)
    with pytest.raises(CompileError) as info:
        mlacc.compile(
            sample_text("torch_ops"), target="exploding", timing_only=True, repro_dir=tmp_path
        )
    first, *notes = str(info.value).splitlines()
    assert first == "lowering to 'exploding' failed: RuntimeError: tile larger than SRAM"
    repro = tmp_path / "mlacc-repro-exploding-lowering.mlir"
    assert repro.is_file() and "torch.aten.mm" in repro.read_text()
    assert 'loc("torch_ops.py":1:1)' in repro.read_text()
    assert notes[-1] == (
        f"note: reproduce with: mlacc compile {repro} --target exploding "
        "--pipeline none -o repro.mlacc"
    )


def test_target_options_a_target_does_not_take_are_an_error(tmp_path: Path) -> None:
    """`reference` has no options: a device meant for `sim` is not silently ignored, and a bad
    option (the user's input) writes no lowering reproducer."""
    from mlacc.runtime.errors import InputError

    with pytest.raises(InputError, match=r"target 'reference' takes no options \(got device\)"):
        mlacc.compile(
            sample_text("torch_ops"),
            target="reference",
            timing_only=True,
            device="h100-like",
            repro_dir=tmp_path,
        )
    assert not list(tmp_path.iterdir())
