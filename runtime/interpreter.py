"""Executes a plan `Function` step by step with a table of kernels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from .errors import MlaccError
from .plan import Arg, Function, Step
from .torch_ops import call_torch_op

Kernel = Callable[..., Any]


class ExecutionError(MlaccError):
    """An op failed while running; the message names the op and its model source location."""


class PlanInterpreter:
    """Runs plan functions: `mlacc.weight` binds weights, `kernels` run dialect ops, and
    torch-dialect ops run through `torch.ops`.

    Steps computed from weights and constants alone (the fused gate/up concatenation, FP8
    weight quantization, RoPE tables, ...) run on a function's first call and their values are
    kept for the next calls: they prepare the weights, they are not part of each call. Random
    and uninitialized-memory ops are never kept.
    """

    def __init__(
        self,
        weights: Mapping[str, torch.Tensor],
        kernels: Mapping[str, Kernel],
        in_place_kernels: Mapping[str, Kernel] | None = None,
    ):
        self.weights = weights
        self.kernels = kernels
        # Steps marked `in_place` (updates of donated buffers) run these; with `in_place`
        # False they run their value form and copy the buffer (for comparisons).
        self.in_place_kernels = dict(in_place_kernels or {})
        self.in_place = True
        self._prepared: dict[str, dict[int, Any]] = {}  # function -> weight-only values

    def run(self, function: Function, inputs: list[torch.Tensor]) -> list[Any]:
        """Runs `function` on `inputs` (already validated); returns its outputs."""
        prepared = self._prepared.get(function.name)
        first_call = prepared is None
        if first_call:
            prepared = self._prepared[function.name] = {}
        env: dict[int, Any] = {**prepared, **dict(zip(function.inputs, inputs))}
        for step in function.steps:
            defined = [vid for vid in step.results if vid is not None]
            if not first_call and defined and all(vid in prepared for vid in defined):
                continue
            weight_only = (
                first_call
                and not _random(step.op)
                and all(vid in prepared for vid in value_refs(step.args))
            )
            args = [_resolve(a, env) for a in step.args]
            try:
                results = self.execute(step, args)
            except MlaccError:
                raise
            except Exception as err:
                where = f" at {step.loc}" if step.loc else ""
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ExecutionError(f"op '{step.op}'{where} failed: {first}") from err
            for vid, value in zip(step.results, results):
                if vid is not None:
                    env[vid] = value
                    if weight_only:
                        prepared[vid] = value
        return [_resolve(a, env) for a in function.outputs]

    def execute(self, step: Step, args: list[Any]) -> tuple[Any, ...]:
        """Runs one step; returns one value per declared result."""
        if step.op == "mlacc.weight":
            return (self.weights[step.attrs["key"]],)
        kernel = self.kernels.get(step.op)
        if step.in_place and self.in_place:
            kernel = self.in_place_kernels.get(step.op, kernel)
        if kernel is not None:
            out = kernel(*args, **step.attrs)
            return out if isinstance(out, tuple) else (out,)
        return call_torch_op(step.op, args)


_RANDOM_OPS = ("rand", "normal", "uniform", "bernoulli", "dropout", "multinomial", "empty")


def _random(op: str) -> bool:
    """Ops whose result is not a function of their arguments (never prepared once)."""
    return any(word in op for word in _RANDOM_OPS)


def value_refs(args: list[Arg]) -> list[int]:
    """The value ids `args` read (through lists)."""
    out: list[int] = []
    for a in args:
        if "ref" in a:
            out.append(a["ref"])
        elif "list" in a:
            out += value_refs(a["list"])
    return out


def _resolve(arg: Arg, env: dict[int, Any]) -> Any:
    if "ref" in arg:
        return env[arg["ref"]]
    if "list" in arg:
        return [_resolve(a, env) for a in arg["list"]]
    return arg["lit"]
