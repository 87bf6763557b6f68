"""Weight preparation: what is computed from weights and constants alone runs once, here.

The fused gate/up concatenations, FP8 weight quantization, RoPE tables, position ranges of a
fixed-length forward... are evaluated at compile time with the ops' reference semantics and
become prepared weights (``__llvm.prep.<hash>``) that the native code takes as memrefs,
instead of being recomputed on every call.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from mlacc.dialects._mlir import ir
from mlacc.dialects.types import tensor_info
from mlacc.runtime.interpreter import PlanInterpreter, value_refs
from mlacc.runtime.plan import Arg

from ..plan_builder import PlanBuilder, entry_functions

PREFIX = "__llvm.prep."
_RANDOM_WORDS = ("rand", "normal", "uniform", "bernoulli", "dropout", "multinomial", "empty")


class _Recorder(PlanBuilder):
    """A plan builder that remembers the plan value id of every MLIR value it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.value_ids: dict[ir.Value, int] = {}

    def _define(self, value: ir.Value) -> int:
        vid = super()._define(value)
        self.value_ids[value] = vid
        return vid


def prepare_weights(module: ir.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replaces weight-only tensors used by run-time ops with prepared weights; returns them."""
    from mlacc.runtime.semantics import SEMANTICS

    builder = _Recorder()
    plan = builder.build(module)
    interpreter = PlanInterpreter({**weights, **builder.constants}, SEMANTICS)
    prepared: dict[str, torch.Tensor] = {}
    # Entry points (forward, prefill, decode) prepare the same weights: each step on the same
    # operands runs once, and each tensor is hashed once (V2-Lite's fused expert weights are
    # 1.5 GB in fp32).
    memo: dict[Any, list[Any]] = {}
    keys: dict[int, str] = {}
    for f in entry_functions(module):
        name = ir.StringAttr(f.attributes["sym_name"]).value
        env = _evaluate(plan.functions[name], interpreter, memo)
        _materialize(f, builder.value_ids, env, prepared, keys)
    return prepared


def _identity(value: Any) -> Any:
    """A memo key part for a step operand: tensors by object identity, the rest by value."""
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))
    if isinstance(value, (list, tuple)):
        return tuple(_identity(v) for v in value)
    return repr(value)


def _evaluate(function: Any, interpreter: PlanInterpreter, memo: dict[Any, list[Any]]) -> dict:
    """Runs the steps that read only weights and constants; returns their values by id."""
    env: dict[int, Any] = {}
    inputs = set(function.inputs)
    for step in function.steps:
        refs = value_refs(step.args)
        if any(word in step.op for word in _RANDOM_WORDS) or inputs & set(refs):
            continue
        if not all(r in env for r in refs):
            continue
        args = [_resolve(a, env) for a in step.args]
        memo_key = (step.op, repr(step.attrs), _identity(args))
        if memo_key not in memo:  # the operands stay referenced by the memo: ids stay valid
            memo[memo_key] = [list(interpreter.execute(step, args)), args]
        results = memo[memo_key][0]
        for vid, value in zip(step.results, results):
            if vid is not None:
                env[vid] = value
    return env


def _resolve(arg: Arg, env: dict[int, Any]) -> Any:
    if "ref" in arg:
        return env[arg["ref"]]
    if "list" in arg:
        return [_resolve(a, env) for a in arg["list"]]
    return arg["lit"]


def _materialize(
    f: Any,
    ids: dict[ir.Value, int],
    env: dict[int, Any],
    prepared: dict[str, torch.Tensor],
    keys: dict[int, str],
) -> None:
    """Each weight-only tensor that a run-time op reads becomes an ``mlacc.weight``."""
    block = f.regions[0].blocks[0]
    known = {v for v, vid in ids.items() if vid in env}
    ops = list(block.operations)
    for op in ops:
        if op.operation.name == "mlacc.weight":
            continue
        for result in op.results:
            if result not in known or tensor_info(result.type) is None:
                continue
            if all(_user_in(use, known) for use in result.uses):
                continue
            tensor = env[ids[result]]
            if not isinstance(tensor, torch.Tensor):
                continue
            if id(tensor) not in keys:
                keys[id(tensor)] = _key(tensor)
            key = keys[id(tensor)]
            prepared.setdefault(key, tensor.contiguous())
            with ir.InsertionPoint(op), op.location:
                weight = ir.Operation.create(
                    "mlacc.weight",
                    results=[result.type],
                    attributes={"key": ir.StringAttr.get(key)},
                )
            result.replace_all_uses_with(weight.results[0])
    _erase_dead(block)


def _user_in(use: Any, known: set[ir.Value]) -> bool:
    """True when the user of `use` is itself weight-only (all its results are known)."""
    owner = use.owner
    if owner.name == "func.return":
        return False
    return bool(owner.results) and all(r in known for r in owner.results)


def _erase_dead(block: ir.Block) -> None:
    """Erases ops whose results are all unused, last to first (weights, constants, math)."""
    for op in reversed(list(block.operations)):
        name = op.operation.name
        if name == "func.return" or not op.results:
            continue
        if any(word in name for word in _RANDOM_WORDS):
            continue
        if all(not list(r.uses) for r in op.results):
            op.operation.erase()


def _key(tensor: torch.Tensor) -> str:
    t = tensor.contiguous()
    digest = hashlib.sha1(str((t.dtype, tuple(t.shape))).encode())
    if t.numel():
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return PREFIX + digest.hexdigest()[:16]
