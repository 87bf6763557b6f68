"""Raises `torch.operator "torch.mlacc.<op>"` (imported custom ops) into dialect ops.

The custom op's schema mirrors the dialect op's fields (`custom_ops`), so raising is one
generic rewrite: tensor operands map to operands (``!torch.none`` to an absent optional
operand, a ``torch.prim.ListConstruct`` to a variadic one), constant operands to attributes,
and results to results. Dead constants and lists are erased afterwards.
"""

from __future__ import annotations

import json
from typing import Any

from ..dialects._mlir import ir
from ..dialects.base import attr_to_python, build
from ..dialects.core import weight
from ..dialects.locations import format_location
from .custom_ops import BY_TORCH_NAME, WEIGHT_OP, CustomOp
from .errors import CaptureError

_CONSTANT_OPS = (
    "torch.constant.int",
    "torch.constant.float",
    "torch.constant.str",
    "torch.constant.bool",
    "torch.constant.none",
)


def raise_custom_ops(module: ir.Module) -> int:
    """Rewrites every mlacc custom op in `module` into its dialect op; returns how many."""
    found: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "torch.operator":
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    raised = 0
    for op in found:
        name = ir.StringAttr(op.attributes["name"]).value
        if name == WEIGHT_OP:
            _raise_weight(op)
            raised += 1
            continue
        custom = BY_TORCH_NAME.get(name)
        if custom is None:
            continue
        _raise_one(op, custom)
        raised += 1
    _erase_dead_constants(module)
    return raised


def opaque_ops(module: ir.Module) -> list[tuple[str, str]]:
    """(name, location) of every `torch.operator` left in `module`."""
    left: list[tuple[str, str]] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "torch.operator":
            left.append((ir.StringAttr(op.attributes["name"]).value, format_location(op.location)))
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    return left


def _raise_one(op: ir.Operation, custom: CustomOp) -> None:
    operands = list(op.operands)
    n = len(custom.operands)
    if len(operands) != n + len(custom.attributes):
        raise CaptureError(
            f"{format_location(op.location)}: {custom.torch_operator_name} has "
            f"{len(operands)} operands, expected {n + len(custom.attributes)}"
        )
    kwargs: dict[str, Any] = {}
    for (name, kind), value in zip(custom.operands, operands[:n]):
        if kind == "variadic":
            kwargs[name] = list(_defining(value, "torch.prim.ListConstruct").operands)
        elif str(value.type) == "!torch.none":
            kwargs[name] = None
        else:
            kwargs[name] = value
    dicts = {
        f.name
        for f in custom.op_class.attribute_fields()
        if getattr(f.constraint, "__name__", "") == "DictAttr"
    }
    for (name, _), value in zip(custom.attributes, operands[n:]):
        constant = _constant(value)
        kwargs[name] = json.loads(constant) if name in dicts else constant
    with ir.InsertionPoint(op), op.location:
        new = build(custom.op_class, loc=op.location, **kwargs)
    new_results = {f.name: getattr(new, f.name) for f in custom.op_class.result_fields()}
    for (name, _), old in zip(custom.results, op.results):
        replacement = new_results[name]
        if replacement is None:
            if len(list(old.uses)):
                raise CaptureError(
                    f"{format_location(op.location)}: result '{name}' of "
                    f"{custom.torch_operator_name} is used but absent"
                )
            continue
        old.replace_all_uses_with(replacement)
    op.erase()


def _raise_weight(op: ir.Operation) -> None:
    """``torch.operator "torch.mlacc.weight"(key, shape, dtype)`` -> ``mlacc.weight {key}``."""
    key = _constant(op.operands[0])
    with ir.InsertionPoint(op), op.location:
        ref = weight(key, op.results[0].type, loc=op.location)
    op.results[0].replace_all_uses_with(ref)
    op.erase()


def _defining(value: ir.Value, name: str) -> ir.Operation:
    owner = value.owner
    if not isinstance(owner, (ir.Operation, ir.OpView)) or owner.operation.name != name:
        raise CaptureError(f"expected a value made by {name}, got {value}")
    return owner.operation


def _constant(value: ir.Value) -> Any:
    owner = value.owner
    op = owner.operation if isinstance(owner, (ir.Operation, ir.OpView)) else None
    if op is None:
        raise CaptureError(f"attribute operand {value} is not a constant")
    if op.name == "torch.prim.ListConstruct":
        return [_constant(v) for v in op.operands]
    if op.name == "torch.constant.none":
        return None
    if op.name in _CONSTANT_OPS:
        return attr_to_python(op.attributes["value"])
    raise CaptureError(
        f"{format_location(op.location)}: attribute operand made by {op.name}, expected a constant"
    )


def _erase_dead_constants(module: ir.Module) -> None:
    dead = ("torch.prim.ListConstruct", *_CONSTANT_OPS)
    while True:
        victims: list[ir.Operation] = []

        def collect(op: ir.Operation, victims: list[ir.Operation] = victims) -> ir.WalkResult:
            if op.name in dead and all(not list(r.uses) for r in op.results):
                victims.append(op)
            return ir.WalkResult.ADVANCE

        module.operation.walk(collect)
        if not victims:
            return
        for op in victims:
            op.erase()
