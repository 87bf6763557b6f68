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
    torch-dialect ops run through `torch.ops`."""

    def __init__(self, weights: Mapping[str, torch.Tensor], kernels: Mapping[str, Kernel]):
        self.weights = weights
        self.kernels = kernels

    def run(self, function: Function, inputs: list[torch.Tensor]) -> list[Any]:
        """Runs `function` on `inputs` (already validated); returns its outputs."""
        env: dict[int, Any] = dict(zip(function.inputs, inputs))
        for step in function.steps:
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
        return [_resolve(a, env) for a in function.outputs]

    def execute(self, step: Step, args: list[Any]) -> tuple[Any, ...]:
        """Runs one step; returns one value per declared result."""
        if step.op == "mlacc.weight":
            return (self.weights[step.attrs["key"]],)
        kernel = self.kernels.get(step.op)
        if kernel is not None:
            out = kernel(*args, **step.attrs)
            return out if isinstance(out, tuple) else (out,)
        return call_torch_op(step.op, args)


def _resolve(arg: Arg, env: dict[int, Any]) -> Any:
    if "ref" in arg:
        return env[arg["ref"]]
    if "list" in arg:
        return [_resolve(a, env) for a in arg["list"]]
    return arg["lit"]
