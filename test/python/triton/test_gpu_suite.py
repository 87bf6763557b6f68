"""benchmarks/gpu_suite.py stays runnable: prepared here at tiny shapes, then run under the
Triton interpreter in a process where torch-mlir cannot be imported (as on the GPU machine).
The numbers mean nothing on a CPU; every section must finish without an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"

# Runs the suite with torch_mlir unimportable (sys.modules entry None).
NO_MLIR = (
    "import runpy, sys; sys.modules['torch_mlir'] = None; "
    "sys.argv = ['gpu_suite.py', *sys.argv[1:]]; "
    f"runpy.run_path({str(SUITE)!r}, run_name='__main__'); "
    "assert not [m for m, v in sys.modules.items() if 'mlir' in m and v is not None]"
)


def _errors(node, path="") -> list[str]:
    if isinstance(node, dict):
        found = [f"{path}: {node['error']}"] if "error" in node else []
        return found + [e for k, v in node.items() for e in _errors(v, f"{path}/{k}")]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in _errors(v, f"{path}[{i}]")]
    return []


@pytest.mark.slow
def test_gpu_suite_runs_small_under_the_interpreter_without_mlir(tmp_path: Path) -> None:
    env = {**os.environ, "MLACC_SM90_CHECK": "0", "OUT": str(tmp_path / "out")}
    env.pop("TRITON_INTERPRET", None)
    prepared = tmp_path / "prepared"
    subprocess.run(
        [sys.executable, str(SUITE), "--prepare", str(prepared), "--small"],
        env=env,
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", NO_MLIR, str(prepared), "--small"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "gpu_suite.json").read_text())
    assert results["interpreted"] and not _errors(results), _errors(results)
    for section in ("attention", "moe", "dense", "decode_step"):
        assert results[section], section
    assert "roof %" in proc.stdout and "decode step" in proc.stdout
    # compiled without the sm_90 check, the artifacts carry no cubins, and the table says so
    assert [r["binaries"] for r in results["decode_step"]["rows"]] == ["none carried"] * len(
        results["decode_step"]["rows"]
    )
    assert "cubins: none carried" in proc.stdout
