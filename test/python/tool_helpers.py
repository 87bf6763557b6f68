"""Helpers shared by the pytest files (importable: pyproject puts test/python on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_tool(tool: str, *args: str, cwd: Path | None = None, input: str | None = None):  # noqa: A002
    """Runs a console script of this environment; returns the CompletedProcess."""
    return subprocess.run(
        [str(BIN / tool), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=input,
        check=False,
        timeout=300,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, tool: str, *needles: str) -> None:
    """The tool failed with exactly one `error:` line containing `needles`, no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"{tool}: error:") or ": error:" in errors[0], errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]
