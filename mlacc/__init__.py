"""mlacc: an MLIR-based compiler that brings DeepSeek-family models to custom accelerators.

    art = mlacc.compile(model, args, target="sim")   # -> Artifact
    art.save("model.mlacc")
    exe = mlacc.runtime.load("model.mlacc")          # == art.load()
    out = exe(*args)

Every subpackage (mlacc.dialects, mlacc.passes, ...) imports this package first, so it
imports nothing itself: the public names below load on first use. That keeps `mlacc-opt`
free of torch, and the run side free of MLIR.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

_LAZY = {
    "compile": ("mlacc.compiler", "compile"),
    "capture": ("mlacc.model_input", "capture"),
    "Artifact": ("mlacc.runtime.artifact", "Artifact"),
    "MlaccError": ("mlacc.runtime.errors", "MlaccError"),
    "load": ("mlacc.runtime", "load"),
    "runtime": ("mlacc.runtime", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlacc' has no attribute '{name}'")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


__all__ = ["Artifact", "MlaccError", "__version__", "capture", "compile", "load", "runtime"]
