"""Turns what users pass to `mlacc.compile` into a graph-level MLIR module."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .dialects._mlir import ir
from .dialects.parsing import SourceError, parse_module
from .runtime.errors import CompileError


def import_model(model: Any, args: Any, kwargs: Any) -> tuple[ir.Module, str]:
    """Returns (module, source name) for an `.mlir` path, MLIR text or an `ir.Module`, in the
    current context."""
    if isinstance(model, ir.Module):
        return parse_mlir(str(model), "<module>"), "<module>"
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".mlir"):
        path = Path(model)
        if not path.is_file():
            raise CompileError(f"{path}: no such file")
        return parse_mlir(path.read_text(), str(path)), str(path)
    if isinstance(model, str) and ("func.func" in model or "module" in model):
        return parse_mlir(model, "<string>"), "<string>"
    raise CompileError(
        f"cannot compile a {type(model).__name__}: expected an .mlir path, MLIR text or an "
        "ir.Module (PyTorch model capture is the frontend's job, not built yet)"
    )


def parse_mlir(text: str, source_name: str) -> ir.Module:
    """Parses and verifies MLIR text; the first diagnostic becomes a CompileError line."""
    try:
        return parse_module(text, source_name)
    except SourceError as err:
        errors = [d for d in err.diagnostics if d.severity == "error"] or err.diagnostics
        if not errors:
            raise CompileError(f"{source_name}: invalid MLIR") from None
        raise CompileError(f"{errors[0].location or source_name}: {errors[0].message}") from None
