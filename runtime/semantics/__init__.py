"""Reference semantics of every mlacc dialect op: pure PyTorch, the single source of truth.

``get("mla.attention")(x, positions, wkv_a, ..., num_heads=..., ...)`` computes what the op
means; the reference executor, the frontend's custom ops and the differential tests all call
these functions. See `registry` for the calling convention. Nothing here imports MLIR.
"""

from __future__ import annotations

from . import core, fp8, mla, moe, rope
from .core import NO_SEMANTICS
from .registry import IN_PLACE, SEMANTICS, get, in_place, names, semantics

__all__ = [
    "IN_PLACE",
    "NO_SEMANTICS",
    "SEMANTICS",
    "core",
    "fp8",
    "get",
    "in_place",
    "mla",
    "moe",
    "names",
    "rope",
    "semantics",
]
