"""The run side of mlacc: load a `.mlacc` artifact and run it.

Imports torch (and, for GPU targets, triton) but never MLIR or the compile side, so a
compiled artifact runs where torch-mlir is not installed.
"""

from __future__ import annotations

import os

from .artifact import Artifact, read_artifact
from .errors import ArtifactError, InputError, MlaccError, TargetError
from .executable import Executable


def load(path: str | os.PathLike[str]) -> Executable:
    """Loads and validates a `.mlacc` file; the result runs like the compiled model."""
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
