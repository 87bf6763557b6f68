"""Parsing MLIR text into a module, the way mlir-opt does (implicit top-level module)."""

from __future__ import annotations

from ._mlir import ir


def parse_module(text: str, source_name: str = "-") -> ir.Module:
    """Parses `text` in the current context into an `ir.Module`.

    Top-level ops outside an explicit `module` get one, as in mlir-opt. Raises
    `ir.MLIRError` (with `error_diagnostics`) on invalid input; diagnostics carry
    `source_name` as their file name.
    """
    parsed = ir.Operation.parse(text, source_name=source_name).operation
    module = ir.Module.create(loc=parsed.location)
    if parsed.name != "builtin.module":
        ir.InsertionPoint(module.body).insert(parsed)
        return module
    for name in parsed.attributes:
        module.operation.attributes[name] = parsed.attributes[name]
    ip = ir.InsertionPoint(module.body)
    for op in list(parsed.regions[0].blocks[0].operations):
        ip.insert(op.operation.detach_from_parent())
    return module


def module_text(module: ir.Module | ir.Operation, *, debug_info: bool = True) -> str:
    """MLIR text of `module`; with `debug_info`, op locations (the model's source lines) are
    printed too, so they survive a round trip through a file."""
    op = module.operation if isinstance(module, ir.Module) else module
    return op.get_asm(enable_debug_info=debug_info)
