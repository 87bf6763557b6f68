"""The run side's executor registry: executor name -> class, found via entry points.

In-tree executors and out-of-tree plug-ins register under the entry-point group
`mlacc.executors`; `register_executor` adds one at run time. Loading an artifact looks its
executor up here and never touches the compile side.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import TargetError
from .base import Executor, PlanExecutor

ENTRY_POINT_GROUP = "mlacc.executors"

_registered: dict[str, type[Executor]] = {}


def register_executor(name: str, cls: type[Executor]) -> None:
    """Makes `cls` the executor for artifacts whose manifest names `name`."""
    _registered[name] = cls


def get_executor(name: str) -> type[Executor]:
    """The executor class for `name`; TargetError if it is not installed or fails to load."""
    if name in _registered:
        return _registered[name]
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        installed = ", ".join(sorted(available_executors())) or "none"
        raise TargetError(f"executor '{name}' is not installed (installed: {installed})")
    try:
        cls = matches[0].load()
    except Exception as err:  # noqa: BLE001 - a broken plug-in must not crash the caller
        raise TargetError(
            f"executor '{name}' failed to load: {type(err).__name__}: {err}"
        ) from None
    _registered[name] = cls
    return cls


def available_executors() -> set[str]:
    """Names of executors registered at run time or through entry points."""
    return set(_registered) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}


__all__ = [
    "ENTRY_POINT_GROUP",
    "Executor",
    "PlanExecutor",
    "available_executors",
    "get_executor",
    "register_executor",
]
