"""Shared fixtures: small compiled artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlacc.backends.testing import compile_sample


@pytest.fixture(scope="session")
def torch_ops_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`torch_ops` sample compiled for `reference` and saved."""
    path = tmp_path_factory.mktemp("artifacts") / "torch_ops.mlacc"
    compile_sample("torch_ops", "reference").save(path)
    return path
