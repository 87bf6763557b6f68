"""Fixtures of the Triton tests: kernels run under the interpreter without a CUDA device
(test/python/conftest.py sets TRITON_INTERPRET=1 before anything imports them), and every
compiled model is built once per session (`compiled_models.py`: compiles and interpreted runs
are the slow part)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch


@pytest.fixture
def device() -> torch.device:
    """Where kernel inputs live: the GPU when there is one, else the CPU (interpreter)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def compiled() -> Callable[..., Any]:
    """``compiled(name, *, fp8=False, block_size=None) -> (triton executable, reference
    executable, triton artifact)`` (`compiled_models.get_compiled`)."""
    from compiled_models import get_compiled

    return get_compiled
