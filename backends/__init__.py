"""The compile side of targets: the plug-in API, the registry, the in-tree backends.

`mlacc.backends.Backend` is the base class and `mlacc.backends.register(name, cls)` adds a
target at run time; packages add targets through the entry-point group `mlacc.backends`.
"""

from __future__ import annotations

from .api import Backend, CompileRequest, Payload
from .registry import ENTRY_POINT_GROUP, BackendStatus, discover, get_backend, register

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendStatus",
    "CompileRequest",
    "Payload",
    "discover",
    "get_backend",
    "register",
]
