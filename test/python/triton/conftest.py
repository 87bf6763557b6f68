"""Fixtures of the Triton tests: kernels run under the interpreter without a CUDA device
(test/python/conftest.py sets TRITON_INTERPRET=1 before anything imports them)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def device() -> torch.device:
    """Where kernel inputs live: the GPU when there is one, else the CPU (interpreter)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
