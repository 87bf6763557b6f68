"""The `llvm` target: the whole graph lowered through MLIR to native CPU code, ahead of time.

Compile side: `--llvm-lower` (`lowering`) turns mla/moe/fp8 and torch ops into linalg on
tensors (weights become function arguments); `codegen` bufferizes (caches in place), tiles
and vectorizes, lowers to LLVM and links one shared object per module; `LLVMBackend`
(`backend`) puts the object, an ABI description and the prepared weights into the artifact.
Run side: `mlacc.runtime.executors.llvm` loads the object with ctypes (no MLIR, no torch
compute on the hot path).
"""

from typing import Any

__all__ = ["LLVMBackend"]


def __getattr__(name: str) -> Any:
    # The backend imports torch (weight preparation); `mlacc-opt` imports `lowering` without it.
    if name == "LLVMBackend":
        from .backend import LLVMBackend

        return LLVMBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
