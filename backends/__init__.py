"""The compile side of targets: the plug-in API, the registry, the in-tree backends.

`mlacc.backends.Backend` is the base class and `mlacc.backends.register(name, cls)` adds a
target at run time; packages add targets through the entry-point group `mlacc.backends`.
"""

from __future__ import annotations

from .api import Backend, CompileRequest, Payload
from .registry import ENTRY_POINT_GROUP, BackendStatus, discover, get_backend, register


def __getattr__(name: str):
    # The plan builder imports torch; `mlacc-opt` loads backend passes without it.
    if name in ("PlanBuilder", "build_plan"):
        from . import plan_builder

        return getattr(plan_builder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendStatus",
    "CompileRequest",
    "Payload",
    "PlanBuilder",
    "build_plan",
    "discover",
    "get_backend",
    "register",
]
