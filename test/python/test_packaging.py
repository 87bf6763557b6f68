"""pyproject lists every package folder; docs and version stay in step with the code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import mlacc
from mlacc.dialects import all_ops

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    folders = {}
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            folders[".".join([package, *rel.parts])] = init.parent
    # data-only folders (device presets) are listed too, with their files as package data
    data_only = set(setuptools.get("package-data", {}))
    assert sorted(folders) == sorted(p for p in setuptools["packages"] if p not in data_only)
    assert data_only <= set(setuptools["packages"])


def test_device_presets_ship_as_package_data() -> None:
    from mlacc.backends.sim.lowering import PRESETS, presets

    data = PYPROJECT["tool"]["setuptools"]["package-data"]["mlacc.backends.sim.devices"]
    assert data == ["*.toml"] and PRESETS.name == "devices"
    assert presets() == ["datacenter-npu", "edge-npu", "h100-like", "h200-like"]


def test_version_matches_pyproject() -> None:
    assert mlacc.__version__ == PYPROJECT["project"]["version"]


def test_dialect_docs_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_dialect_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_op_is_documented_and_round_tripped() -> None:
    lit_ops = "".join(p.read_text() for p in (ROOT / "test" / "Dialect").rglob("ops.mlir"))
    for op in all_ops():
        assert op.__doc__ and len(op.__doc__.split()) > 15, f"{op.OPERATION_NAME} needs a docstring"
        assert f'"{op.OPERATION_NAME}"' in lit_ops, (
            f"no round-trip lit test for {op.OPERATION_NAME}"
        )


def test_generated_builder_signatures(capsys) -> None:
    """Prints a few generated op constructors so a change in the bindings' ext API shows here."""
    import inspect

    from mlacc.dialects.mla import LatentAttentionOp, RmsNormOp

    for op in (RmsNormOp, LatentAttentionOp):
        sig = str(inspect.signature(op.__init__))
        print(op.__name__, sig)
        assert sig.startswith("(self, ") and "loc=None" in sig and "ip=None" in sig
    assert "q_latent, q_pe, kv_cache, positions, kv_lora_rank, softmax_scale, ctx" in str(
        inspect.signature(LatentAttentionOp.__init__)
    )
