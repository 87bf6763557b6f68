"""The `llvm` target's op lowerings: op name -> a function that writes the op's kernel.

A lowering gets a `Kernel` (the op's tensor operands as SSA names + builtin types, its result
types and attributes) and returns the body of a private ``func.func`` in MLIR text
(linalg/tensor/arith/math/scf on builtin tensors) ending in ``return``. One module per op
family registers its lowerings with `lowering`; `LOWERINGS` is filled on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..emit import TT, LoweringError, Names

_FAMILIES = ("norm", "rope", "attention", "moe", "fp8", "torch_ops")


@dataclass
class Kernel:
    """What a lowering knows about one op: operands (by field name), results, attributes."""

    op_name: str
    args: dict[str, tuple[str, TT]]  # present tensor operands: field -> (SSA name, type)
    results: list[TT]
    attrs: dict[str, Any]
    names: Names = field(default_factory=Names)

    def arg(self, name: str) -> str:
        """The SSA name of operand `name` inside the kernel."""
        return self.args[name][0]

    def type(self, name: str) -> TT:
        """The builtin tensor type of operand `name`."""
        return self.args[name][1]

    def has(self, name: str) -> bool:
        """True when optional operand `name` is present."""
        return name in self.args

    def reject(self, *fields: str) -> None:
        """Raises LoweringError when one of the optional operands `fields` is present."""
        for f in fields:
            if f in self.args:
                raise LoweringError(
                    f"operand '{f}' of '{self.op_name}' is not lowered by the llvm target yet"
                )


Lowering = Callable[[Kernel], list[str]]
LOWERINGS: dict[str, Lowering] = {}
# (producer, consumer) -> the lowering of both as one kernel: the producer's operands and
# attributes, the consumer's results (its attributes as "<consumer>.<name>"); used where the
# producer's only use is the consumer's first operand.
FUSIONS: dict[tuple[str, str], Lowering] = {}
_loaded = False


def lowering(op_name: str) -> Callable[[Lowering], Lowering]:
    """Registers the decorated function as the lowering of `op_name`."""

    def register(fn: Lowering) -> Lowering:
        LOWERINGS[op_name] = fn
        return fn

    return register


def fused_lowering(producer: str, consumer: str) -> Callable[[Lowering], Lowering]:
    """Registers the decorated function as the lowering of `consumer` applied to `producer`."""

    def register(fn: Lowering) -> Lowering:
        FUSIONS[(producer, consumer)] = fn
        return fn

    return register


def lowerings() -> dict[str, Lowering]:
    """Every registered lowering (imports the op family modules once)."""
    global _loaded
    if not _loaded:
        for family in _FAMILIES:
            importlib.import_module(f"{__name__}.{family}")
        _loaded = True
    return LOWERINGS


def fusions() -> dict[tuple[str, str], Lowering]:
    """Every registered producer/consumer fusion."""
    lowerings()
    return FUSIONS


__all__ = [
    "FUSIONS",
    "LOWERINGS",
    "Kernel",
    "Lowering",
    "LoweringError",
    "fused_lowering",
    "fusions",
    "lowering",
    "lowerings",
]
