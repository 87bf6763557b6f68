"""Checks, before compiling, that a target supports every op of a module."""

from __future__ import annotations

from ..dialects._mlir import ir
from ..dialects.locations import format_location
from ..runtime.errors import UnsupportedOpError
from .api import Backend
from .registry import targets_supporting

# Structure every target handles: the module, functions, returns.
STRUCTURAL_OPS = frozenset({"builtin.module", "func.func", "func.return"})


def check_supported(backend: Backend, module: ir.Module) -> None:
    """Raises UnsupportedOpError naming the first unsupported op, its location and the targets
    that do support it."""
    unsupported: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        name = op.name
        if name not in STRUCTURAL_OPS and not backend.supports(name):
            unsupported.append(op)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if not unsupported:
        return
    op = unsupported[0]
    where = format_location(op.location)
    others = [t for t in targets_supporting(op.name) if t != backend.name]
    can = ", ".join(others) if others else "none of the installed targets"
    at = f"{where}: " if where else ""
    raise UnsupportedOpError(
        f"{at}op '{op.name}' is not supported by target '{backend.name}' (supported by: {can})"
    )
