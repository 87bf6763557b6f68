"""Bounded runs of the fuzz harnesses in test/fuzz (a long campaign: see test/fuzz/README.md).

Each harness runs in its own process, so a hard crash of native code fails this test (and
leaves the offending input in the working directory) instead of taking pytest down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"


@pytest.mark.parametrize(
    ("harness", "examples"), [("fuzz_mlacc_opt.py", 1000), ("fuzz_artifact.py", 300)]
)
def test_fuzz_harness(harness: str, examples: int, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FUZZ / harness), "--examples", str(examples), "--seed", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    left = sorted(p.name for p in tmp_path.iterdir())
    assert proc.returncode == 0, (
        f"{harness} failed (last input: {left}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert "no failure" in proc.stdout


def test_fuzz_campaign_short_run(tmp_path: Path) -> None:
    """Every target of the campaign (mlir, options, device, artifact, pt2), a few cases each."""
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / "campaign.py"),
            *("--cases", "120", "--seed", "1", "--json", str(summary)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(summary.read_text())
    assert result["cases"] == 120
    assert set(result["targets"]) == {"mlir", "options", "device", "artifact", "pt2"}
    assert (result["crashes"], result["hangs"], result["tracebacks_or_unclear_errors"]) == (0, 0, 0)
    assert result["files_left_behind"] == []
