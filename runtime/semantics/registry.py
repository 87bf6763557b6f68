"""The table from op name (``"mla.attention"``) to its reference semantics (a pure-torch function).

Calling convention, which the plan interpreter relies on: a function takes the op's operands
positionally in field order (an absent optional operand is ``None``, a variadic operand is a
list of tensors) and its attributes as keyword arguments named like the attribute fields, with
plain Python values (int, float, str, bool, list, dict). It returns one tensor for a
single-result op, else a tuple with one entry per declared result, in order (``None`` for an
absent optional result).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

SEMANTICS: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class InPlace:
    """The in-place form of an op that updates a buffer: `fn` has the op's calling convention
    but writes into operand `operand` and returns it as result `result`."""

    fn: Callable[..., Any]
    operand: str
    result: str


# Executors use these when the plan donates the buffer (the runtime's KV cache; see
# docs/execution-contract.md): op name -> InPlace.
IN_PLACE: dict[str, InPlace] = {}

# The modules whose import fills SEMANTICS (each registers its ops with @semantics).
_OP_MODULES = ("core", "fp8", "mla", "moe")

F = TypeVar("F", bound=Callable[..., Any])

_loaded = False


def semantics(op_name: str) -> Callable[[F], F]:
    """Registers the decorated function as the reference semantics of `op_name`."""

    def register(fn: F) -> F:
        if op_name in SEMANTICS and SEMANTICS[op_name] is not fn:
            raise ValueError(f"semantics for '{op_name}' are already registered")
        SEMANTICS[op_name] = fn
        return fn

    return register


def in_place(op_name: str, *, operand: str, result: str) -> Callable[[F], F]:
    """Registers the decorated function as the in-place form of `op_name`, which updates
    operand `operand` and returns it as result `result`, and registers its value form (the
    same call on a copy of `operand`) as the op's reference semantics."""

    def register(fn: F) -> F:
        IN_PLACE[op_name] = InPlace(fn, operand, result)
        semantics(op_name)(_value_form(fn, operand))
        return fn

    return register


def _value_form(fn: Callable[..., Any], operand: str) -> Callable[..., Any]:
    signature = inspect.signature(fn)

    def value(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        buffer = bound.arguments.get(operand)
        if buffer is not None:
            bound.arguments[operand] = buffer.clone()
        return fn(*bound.args, **bound.kwargs)

    value.__signature__ = signature  # type: ignore[attr-defined]
    value.__name__ = value.__qualname__ = fn.__name__.rstrip("_")
    value.__module__ = fn.__module__
    value.__doc__ = f"Value form of `{fn.__name__}`: the same on a copy of `{operand}`."
    return value


def load_all() -> None:
    """Imports every op module of this package, so that SEMANTICS is complete (idempotent)."""
    global _loaded
    if _loaded:
        return
    for module in _OP_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    _loaded = True


def get(op_name: str) -> Callable[..., Any]:
    """The reference semantics of `op_name`; KeyError naming the op when there are none."""
    load_all()
    try:
        return SEMANTICS[op_name]
    except KeyError:
        known = ", ".join(sorted(SEMANTICS))
        raise KeyError(
            f"no reference semantics for op '{op_name}' (ops with semantics: {known})"
        ) from None


def names() -> list[str]:
    """Every op name that has reference semantics, sorted."""
    load_all()
    return sorted(SEMANTICS)
