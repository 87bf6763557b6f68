"""Triton kernels for the `triton` target (run side).

Every module exports ``KERNELS: dict[op name -> wrapper]``; a wrapper has exactly the
signature of the op's reference semantics (`mlacc.runtime.semantics`). ``FUSED_KERNELS`` are
the kernels of the target's plan-level fusions (op names ``triton.*``). `kernel_table`
collects them all. A module may also export ``IN_PLACE_KERNELS`` (op name -> the form that
updates a donated buffer in place, as `semantics.registry.IN_PLACE`) and, for fused ops the
semantics do not know, ``IN_PLACE_OPERANDS`` (op name -> the operand it updates);
`in_place_kernel_table` and `in_place_operands` collect those. `KERNEL_MODULES` lists the
modules it looks in (the attention and RoPE modules may be absent in a checkout:
`kernel_modules` says which were found).

Set ``TRITON_INTERPRET=1`` before importing these modules to run them on CPU.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

KERNEL_MODULES = (
    "gemm",
    "rmsnorm",
    "router",
    "moe",
    "fp8",
    "heads",
    "rotary",
    "embedding",
    "attention",
    "rope",
)
OPTIONAL_MODULES = frozenset({"attention", "rope"})

_table: dict[str, Callable[..., Any]] | None = None
_in_place: dict[str, Callable[..., Any]] = {}
_operands: dict[str, str] = {}
_status: dict[str, str] = {}


def _load() -> dict[str, Callable[..., Any]]:
    global _table
    if _table is None:
        table: dict[str, Callable[..., Any]] = {}
        for name in KERNEL_MODULES:
            try:
                module = importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as err:
                if name in OPTIONAL_MODULES and err.name == f"{__name__}.{name}":
                    _status[name] = "absent"
                    continue
                raise
            kernels = {**getattr(module, "KERNELS", {}), **getattr(module, "FUSED_KERNELS", {})}
            table.update(kernels)
            _in_place.update(getattr(module, "IN_PLACE_KERNELS", {}))
            _operands.update(getattr(module, "IN_PLACE_OPERANDS", {}))
            _status[name] = "loaded: " + ", ".join(sorted(kernels))
        _table = table
    return _table


def kernel_table() -> dict[str, Callable[..., Any]]:
    """Op name -> Triton wrapper, over every kernel module present."""
    return dict(_load())


def in_place_kernel_table() -> dict[str, Callable[..., Any]]:
    """Op name -> Triton wrapper that writes into its donated operand (`Step.in_place`)."""
    _load()
    return dict(_in_place)


def in_place_operands() -> dict[str, str]:
    """Fused op name -> the operand its in-place form updates (and returns)."""
    _load()
    return dict(_operands)


def kernel_modules() -> dict[str, str]:
    """Module name -> "absent" or "loaded: <ops>"."""
    _load()
    return dict(_status)
