"""Runs torch-dialect ops (`torch.aten.*`, `torch.prims.*`, scalar `torch.aten.*.int`) eagerly.

torch-mlir names an op after its ATen overload (`torch.aten.add.Tensor`,
`torch.aten.mm` for the default overload) and passes every argument positionally, with
dtypes, layouts and memory formats as integers. `call_torch_op` maps that back onto
`torch.ops` using the overload's schema.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

# c10::ScalarType codes as torch-mlir writes them (torch.constant.int).
_SCALAR_TYPES: dict[int, torch.dtype] = {
    0: torch.uint8,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.int64,
    5: torch.float16,
    6: torch.float32,
    7: torch.float64,
    9: torch.complex64,
    10: torch.complex128,
    11: torch.bool,
    15: torch.bfloat16,
    23: torch.float8_e5m2,
    24: torch.float8_e4m3fn,
}
_MEMORY_FORMATS = {
    0: torch.contiguous_format,
    1: torch.preserve_format,
    2: torch.channels_last,
    3: torch.channels_last_3d,
}
_LAYOUTS = {0: torch.strided}


class TorchOpError(Exception):
    """The op does not exist in this torch build."""


@functools.cache
def resolve(op_name: str) -> Any:
    """The `torch.ops` overload for a torch-dialect op name, e.g. `torch.aten.add.Tensor`."""
    parts = op_name.split(".")
    if len(parts) < 3 or parts[0] != "torch":
        raise TorchOpError(f"'{op_name}' is not a torch-dialect ATen op")
    namespace, name = parts[1], parts[2]
    overload = parts[3] if len(parts) > 3 else "default"
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
        return getattr(packet, overload)
    except (AttributeError, RuntimeError):
        raise TorchOpError(
            f"torch {torch.__version__} has no op {namespace}::{name}.{overload}"
        ) from None


def is_torch_op(op_name: str) -> bool:
    """True when `op_name` names an op that `call_torch_op` can run."""
    try:
        resolve(op_name)
    except TorchOpError:
        return False
    return True


@functools.cache
def _converters(op_name: str) -> tuple[list[tuple[str, bool, Callable[[Any], Any]]], int]:
    schema = resolve(op_name)._schema
    out = []
    for arg in schema.arguments:
        out.append((arg.name, arg.kwarg_only, _converter_for(str(arg.type))))
    return out, len(schema.returns)


def _converter_for(type_str: str) -> Callable[[Any], Any]:
    base = type_str.rstrip("?")
    table = {"ScalarType": _SCALAR_TYPES, "MemoryFormat": _MEMORY_FORMATS, "Layout": _LAYOUTS}
    if base in table:
        mapping = table[base]
        return lambda v: mapping[v] if isinstance(v, int) and not isinstance(v, bool) else v
    if base == "Device":
        return lambda v: torch.device(v) if isinstance(v, str) else v
    return lambda v: v


def call_torch_op(op_name: str, args: list[Any]) -> tuple[Any, ...]:
    """Calls the ATen overload with torch-mlir's positional arguments; returns a result tuple."""
    fn = resolve(op_name)
    converters, n_returns = _converters(op_name)
    positional, keywords = [], {}
    for (name, kwarg_only, convert), value in zip(converters, args):
        value = convert(value)
        if kwarg_only:
            keywords[name] = value
        else:
            positional.append(value)
    result = fn(*positional, **keywords)
    if n_returns == 1 or not isinstance(result, (tuple, list)):
        return (result,)
    return tuple(result)
