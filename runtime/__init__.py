"""The run side of mlacc: load a `.mlacc` artifact and run it.

Imports torch (and, for GPU targets, triton) but never MLIR or the compile side, so a
compiled artifact runs where torch-mlir is not installed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import ArtifactError, InputError, MlaccError, TargetError

if TYPE_CHECKING:
    from .artifact import Artifact, read_artifact
    from .executable import Executable

# Imported on first use: `mlacc.runtime.errors` and `mlacc.runtime.sim` serve the compile side
# (and `mlacc-opt`, which never imports torch).
_LAZY = {"Artifact": "artifact", "read_artifact": "artifact", "Executable": "executable"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path: str | os.PathLike[str]) -> Executable:
    """Loads and validates a `.mlacc` file; the result runs like the compiled model."""
    from .artifact import read_artifact
    from .executable import Executable

    return Executable(read_artifact(path))


__all__ = [
    "Artifact",
    "ArtifactError",
    "Executable",
    "InputError",
    "MlaccError",
    "TargetError",
    "load",
    "read_artifact",
]
