"""Tiling and vectorization schedule (transform dialect) for the llvm target."""

from __future__ import annotations

from mlacc.dialects._mlir import ir


def apply_schedule(module: ir.Module) -> None:
    """Tiles and vectorizes contractions in place (none yet: loops are scalar)."""
    del module
