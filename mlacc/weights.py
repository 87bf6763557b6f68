"""The module's weight table (from its `mlacc.weight` ops) and binding data to it."""

from __future__ import annotations

import os
from typing import Any

import torch

from .dialects._mlir import ir
from .dialects.types import tensor_info
from .runtime.errors import CompileError


def weight_specs(module: ir.Module) -> dict[str, dict[str, Any]]:
    """Key -> {shape, dtype} for every `mlacc.weight` in `module`."""
    specs: dict[str, dict[str, Any]] = {}

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "mlacc.weight":
            key = ir.StringAttr(op.attributes["key"]).value
            info = tensor_info(op.results[0].type)
            spec = {"shape": list(info.shape), "dtype": info.dtype}
            if specs.setdefault(key, spec) != spec:
                raise CompileError(
                    f"weight '{key}' is used with two types: {specs[key]} and {spec}"
                )
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return specs


def bind_weights(
    weights: dict[str, torch.Tensor] | str | os.PathLike[str] | None,
    specs: dict[str, dict[str, Any]],
) -> dict[str, torch.Tensor]:
    """Picks the tensors `specs` needs from `weights` (a dict or a .safetensors path), checking
    each one's shape and dtype."""
    if isinstance(weights, (str, os.PathLike)):
        from safetensors.torch import load_file

        if not os.path.isfile(weights):
            raise CompileError(f"{weights}: no such weights file")
        weights = load_file(str(weights))
    weights = dict(weights or {})
    bound = {}
    for key, spec in specs.items():
        if key not in weights:
            raise CompileError(
                f"no data for weight '{key}' ({spec['dtype']}{spec['shape']}); "
                "pass weights=... or compile with timing_only=True"
            )
        tensor = weights[key]
        dtype = str(tensor.dtype).removeprefix("torch.")
        if list(tensor.shape) != spec["shape"] or dtype != spec["dtype"]:
            raise CompileError(
                f"weight '{key}' is {dtype}{list(tensor.shape)}, the module expects "
                f"{spec['dtype']}{spec['shape']}"
            )
        bound[key] = tensor.detach().contiguous()
    return bound


def nbytes(spec: dict[str, Any]) -> int:
    """Bytes of a tensor with `spec`'s shape and dtype."""
    n = 1
    for d in spec["shape"]:
        n *= d or 0
    return n * torch.empty((), dtype=getattr(torch, spec["dtype"])).element_size()
