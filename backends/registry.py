"""Backend discovery: run-time registrations plus the `mlacc.backends` entry-point group."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from ..runtime.errors import TargetError
from .api import Backend

ENTRY_POINT_GROUP = "mlacc.backends"

_registered: dict[str, type[Backend]] = {}


@dataclass
class BackendStatus:
    """One installed target: its class, or why it failed to load."""

    name: str
    cls: type[Backend] | None
    error: str | None
    origin: str  # "registered" or the entry point's value ("pkg.module:Class")


def register(name: str, cls: type[Backend]) -> None:
    """Registers backend class `cls` as target `name` (overrides an entry point of that name)."""
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"backend '{name}' must be a subclass of mlacc.backends.Backend")
    _registered[name] = cls


def discover() -> dict[str, BackendStatus]:
    """Every known target, loading entry points; broken plug-ins are reported, not raised."""
    found: dict[str, BackendStatus] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise TypeError(f"{ep.value} is not a subclass of mlacc.backends.Backend")
            found[ep.name] = BackendStatus(ep.name, cls, None, ep.value)
        except Exception as err:  # noqa: BLE001 - report any plug-in failure with its reason
            found[ep.name] = BackendStatus(ep.name, None, f"{type(err).__name__}: {err}", ep.value)
    for name, cls in _registered.items():
        found[name] = BackendStatus(name, cls, None, "registered")
    return dict(sorted(found.items()))


def get_backend(name: str) -> Backend:
    """An instance of target `name`; TargetError when unknown or broken."""
    status = discover().get(name)
    if status is None:
        known = ", ".join(n for n, s in discover().items() if s.cls is not None) or "none"
        raise TargetError(f"unknown target '{name}' (installed targets: {known})")
    if status.cls is None:
        raise TargetError(f"target '{name}' failed to load: {status.error}")
    return status.cls()


def targets_supporting(op_name: str) -> list[str]:
    """Names of the installed targets that can compile `op_name`."""
    out = []
    for name, status in discover().items():
        if status.cls is None:
            continue
        try:
            if status.cls().supports(op_name):
                out.append(name)
        except Exception:  # noqa: BLE001 - a broken plug-in supports nothing
            continue
    return out
