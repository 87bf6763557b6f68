"""Shared fixtures: small compiled artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mlacc.backends.testing import compile_sample

# The Triton kernels run under the interpreter on machines without a CUDA GPU; Triton reads
# this when the kernel modules are imported, so it is set before any test imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# The `triton` target's sm_90 register/spill check compiles every kernel config (seconds per
# artifact on a cold cache): off here, on in its own tests (test_sm90_check.py).
os.environ.setdefault("MLACC_SM90_CHECK", "0")


@pytest.fixture(scope="session")
def torch_ops_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`torch_ops` sample compiled for `reference` and saved."""
    path = tmp_path_factory.mktemp("artifacts") / "torch_ops.mlacc"
    compile_sample("torch_ops", "reference").save(path)
    return path
