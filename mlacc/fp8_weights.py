"""FP8 weights at compile time: weight-only ``fp8.quantize`` becomes stored e4m3 weights.

``--quantize-fp8`` leaves ``w_q, w_s = fp8.quantize(w)`` on every weight it quantizes (``w``
computed from ``mlacc.weight`` ops alone: a weight, or the routed experts stacked with the
shared ones and gate/up concatenated). `fold_weight_quantizations` replaces each such op with
two ``mlacc.weight`` ops, the e4m3 values and their fp32 block scales, and erases the
high-precision weights nothing else reads. So an ``--fp8`` artifact stores e4m3 weights (about
half of bf16), and no target quantizes weights at run time or keeps a second copy.

Each folded pair is computed later from the model's weights by its recipe (`FoldedPair`: the
plan steps from the source weights to the quantization, run with the ops' reference
semantics), one pair at a time, so a checkpoint streams through it. A source weight that is
already FP8 (a DeepSeek-V3 checkpoint's e4m3 values + ``weight_scale_inv``, `Fp8Blocks`) is
taken as it is: reshapes of leading dims, concatenations along leading dims or at block
boundaries and the final quantization move its blocks without touching a value, so the stored
weights are the checkpoint's bits. Any other op on it dequantizes it first, and the pair is
reported as re-quantized.

Keys: a pair computed from one weight ``K`` alone is stored as ``K`` (e4m3) and
``K_scale_inv`` (fp32), as DeepSeek-V3 checkpoints name them (``K.e4m3`` when ``K`` itself is
still read in high precision elsewhere); a pair from several weights is named after them,
``<common prefix>{<rest>,...}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .dialects._mlir import ir
from .dialects.core import weight
from .runtime.plan import Arg, Step

QUANTIZE = "fp8.quantize"
_TEMP_KEY = "__mlacc.fp8.pending"
_RANDOM = ("rand", "normal", "uniform", "bernoulli", "dropout", "multinomial", "empty")
# ops that move whole blocks of an FP8 tensor when they keep its last two dims (or cut them at
# block boundaries): handled exactly by `_exact_step`
_RESHAPES = ("torch.aten.reshape", "torch.aten.view", "torch.aten.unsqueeze")


@dataclass(frozen=True)
class Fp8Blocks:
    """A weight stored in FP8: e4m3 values, fp32 scales of ``block x block`` blocks over the
    last two dims (leading dims: blocks of one), and the dtype it stands for."""

    q: torch.Tensor
    scale: torch.Tensor
    block: int
    dtype: torch.dtype

    def dequantize(self) -> torch.Tensor:
        """``q * scale`` of each element's block, in `dtype`."""
        from .runtime.semantics.fp8 import dequantize

        name = str(self.dtype).removeprefix("torch.")
        return dequantize(self.q, self.scale, block_shape=[self.block] * 2, out_dtype=name)


class Fp8Source:
    """The FP8 weights of a source (a checkpoint): `blocks` loads one, `meta` describes it
    (meta tensors); both return None for a key that is not stored in FP8."""

    def blocks(self, key: str) -> Fp8Blocks | None:
        raise NotImplementedError

    def meta(self, key: str) -> Fp8Blocks | None:
        raise NotImplementedError


Fp8Lookup = Callable[[str], Fp8Blocks | None]


@dataclass
class FoldedPair:
    """One folded quantization: its stored keys and types and how to compute it."""

    q_key: str
    scale_key: str
    q_spec: dict[str, Any]
    scale_spec: dict[str, Any]
    sources: list[str]  # the mlacc.weight keys it reads
    steps: list[Step]  # from the source weights to the fp8.quantize (the last step)
    constants: dict[str, torch.Tensor] = field(default_factory=dict)

    def compute(
        self, load: Callable[[str], torch.Tensor], fp8: Fp8Source | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(q, scale, exact): exact when FP8 source blocks were moved without re-quantizing."""
        return _evaluate(self, load, fp8.blocks if fp8 is not None else None)

    def reads_fp8(self, fp8: Fp8Source) -> bool:
        """Whether any source weight is stored in FP8."""
        return any(fp8.meta(k) is not None for k in self.sources)

    def is_exact(self, fp8: Fp8Source) -> bool:
        """Whether `compute` takes FP8 source weights as they are (checked on shapes only)."""
        return _evaluate(self, _no_load, fp8.meta, dry=True)[2]


def _no_load(key: str) -> torch.Tensor:
    raise KeyError(key)


def fold_weight_quantizations(module: ir.Module) -> list[FoldedPair]:
    """Replaces every weight-only ``fp8.quantize`` in `module` with ``mlacc.weight`` ops (see
    the module docstring); returns the pairs to compute, one per distinct quantization."""
    from .passes.quantize_fp8 import weight_keys

    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == QUANTIZE and weight_keys(op.operands[0]) is not None:
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if not found:
        return []
    pairs: dict[str, FoldedPair] = {}
    created: list[tuple[FoldedPair, ir.Operation, ir.Operation]] = []
    blocks = []
    for op in found:
        pair = _recipe(op)
        pair = pairs.setdefault(_signature(pair), pair)
        with ir.InsertionPoint(op), op.location:
            q = weight(_TEMP_KEY, op.results[0].type)
            s = weight(_TEMP_KEY, op.results[1].type)
        op.results[0].replace_all_uses_with(q)
        op.results[1].replace_all_uses_with(s)
        created.append((pair, q.owner, s.owner))
        if op.block not in blocks:
            blocks.append(op.block)
        op.erase()
    for block in blocks:
        _erase_dead_weight_ops(block)
    _name(list(pairs.values()), _remaining_keys(module))
    for pair, q_op, s_op in created:
        q_op.attributes["key"] = ir.StringAttr.get(pair.q_key)
        s_op.attributes["key"] = ir.StringAttr.get(pair.scale_key)
    return list(pairs.values())


def _recipe(op: ir.Operation) -> FoldedPair:
    """The plan steps computing `op` (a weight-only quantize) from its source weights."""
    from .backends.plan_builder import PlanBuilder
    from .dialects.types import tensor_info

    order: list[ir.Operation] = []
    seen: list[ir.Operation] = []

    def visit(value: ir.Value) -> None:
        owner = value.owner
        owner = owner.operation if isinstance(owner, ir.OpView) else owner
        if owner in seen:
            return
        seen.append(owner)
        for operand in owner.operands:
            visit(operand)
        order.append(owner)

    visit(op.operands[0])
    builder = PlanBuilder()
    steps = []
    sources = []
    for ancestor in [*order, op]:
        step = builder.step(ancestor.opview)
        if step is None:
            continue
        step.loc = ""
        steps.append(step)
        if step.op == "mlacc.weight":
            sources.append(step.attrs["key"])
    q_info, s_info = (tensor_info(r.type) for r in op.results)
    return FoldedPair(
        q_key="",
        scale_key="",
        q_spec={"shape": list(q_info.shape), "dtype": q_info.dtype},
        scale_spec={"shape": list(s_info.shape), "dtype": s_info.dtype},
        sources=sorted(set(sources)),
        steps=steps,
        constants=dict(builder.constants),
    )


def _signature(pair: FoldedPair) -> str:
    """Equal for equal computations (entry points quantize the same weights alike)."""
    digest = hashlib.sha1(json.dumps([asdict(s) for s in pair.steps], sort_keys=True).encode())
    for key in sorted(pair.constants):
        digest.update(pair.constants[key].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _erase_dead_weight_ops(block: ir.Block) -> None:
    """Erases unused ops computed from weights and constants only, last to first."""
    computed_from_weights: dict[ir.Value, bool] = {}
    for op in block.operations:
        only = len(op.regions) == 0 and all(
            computed_from_weights.get(v, False) for v in op.operands
        )
        for r in op.results:
            computed_from_weights[r] = only
    for op in reversed(list(block.operations)):
        name = op.operation.name
        if not op.results or any(word in name for word in _RANDOM):
            continue
        if not computed_from_weights.get(op.results[0], False):
            continue
        if all(not list(r.uses) for r in op.results):
            op.operation.erase()


def _remaining_keys(module: ir.Module) -> set[str]:
    keys: set[str] = set()

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "mlacc.weight":
            keys.add(ir.StringAttr(op.attributes["key"]).value)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return keys


def _name(pairs: list[FoldedPair], taken: set[str]) -> None:
    used = set(taken)
    for pair in pairs:
        direct = len(pair.steps) == 2 and pair.steps[0].op == "mlacc.weight"
        if direct:
            base = pair.sources[0]
            base = base if base not in used else f"{base}.e4m3"
        else:
            base = _group_name(pair.sources)
        name, n = base, 1
        while name in used or f"{name}_scale_inv" in used:
            n += 1
            name = f"{base}#{n}"
        pair.q_key, pair.scale_key = name, f"{name}_scale_inv"
        used |= {pair.q_key, pair.scale_key}


def _group_name(keys: list[str]) -> str:
    """``layers.1.ffn.{experts.w_gate,shared_experts.w1.weight}`` for those two keys."""
    parts = [k.split(".") for k in keys]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    prefix = ".".join(parts[0][:common])
    rest = ",".join(".".join(p[common:]) for p in parts)
    return f"{prefix}.{{{rest}}}" if prefix else f"{{{rest}}}"


# ------------------------------------------------------------------------------ evaluation


def _evaluate(
    pair: FoldedPair, load: Callable[[str], torch.Tensor], fp8: Fp8Lookup | None, dry: bool = False
) -> tuple[Any, Any, bool]:
    """Runs `pair.steps`; FP8 sources stay `Fp8Blocks` through the steps that move blocks."""
    from .runtime.interpreter import PlanInterpreter
    from .runtime.semantics import SEMANTICS

    interpreter = PlanInterpreter(pair.constants, SEMANTICS)
    env: dict[int, Any] = {}
    exact, saw_blocks = True, False
    for step in pair.steps:
        if step.op == "mlacc.weight":
            key = step.attrs["key"]
            blocks = fp8(key) if fp8 is not None and key not in pair.constants else None
            if blocks is not None:
                value: Any = blocks
                saw_blocks = True
            elif key in pair.constants or not dry:
                value = pair.constants.get(key) if key in pair.constants else load(key)
            else:
                return None, None, False
            env[step.results[0]] = value
            continue
        args = [_resolve(a, env) for a in step.args]
        results = _exact_step(step, args)
        if results is None:
            if dry:
                return None, None, False
            exact = exact and not _holds_blocks(args)
            results = interpreter.execute(step, [_dequantized(a) for a in args])
        for vid, value in zip(step.results, results):
            if vid is not None:
                env[vid] = value
    q, scale = (env[vid] for vid in pair.steps[-1].results)
    return q, scale, exact and saw_blocks


def _resolve(arg: Arg, env: dict[int, Any]) -> Any:
    if "ref" in arg:
        return env[arg["ref"]]
    if "list" in arg:
        return [_resolve(a, env) for a in arg["list"]]
    return arg["lit"]


def _holds_blocks(args: list[Any]) -> bool:
    return any(isinstance(a, Fp8Blocks) or (isinstance(a, list) and _holds_blocks(a)) for a in args)


def _dequantized(arg: Any) -> Any:
    if isinstance(arg, Fp8Blocks):
        return arg.dequantize()
    if isinstance(arg, list):
        return [_dequantized(a) for a in arg]
    return arg


def _exact_step(step: Step, args: list[Any]) -> tuple[Any, ...] | None:
    """The step applied to FP8 blocks without touching a value, or None if it cannot be."""
    if not _holds_blocks(args):
        return None
    if step.op == QUANTIZE:
        x = args[0]
        fits = isinstance(x, Fp8Blocks) and step.attrs["block_shape"] == [x.block, x.block]
        return (x.q, x.scale) if fits else None
    if step.op in _RESHAPES and isinstance(args[0], Fp8Blocks):
        x = args[0]
        probe = torch.empty(x.q.shape, device="meta")
        from .runtime.torch_ops import call_torch_op

        shape = tuple(call_torch_op(step.op, [probe, *args[1:]])[0].shape)
        if len(shape) < 2 or shape[-2:] != tuple(x.q.shape[-2:]):
            return None
        lead = shape[:-2]
        return (
            Fp8Blocks(
                x.q.reshape(shape), x.scale.reshape(*lead, *x.scale.shape[-2:]), x.block, x.dtype
            ),
        )
    if step.op in ("torch.aten.cat", "torch.aten.stack"):
        return _exact_join(step.op, args)
    return None


def _exact_join(op: str, args: list[Any]) -> tuple[Fp8Blocks] | None:
    """cat/stack of FP8 tensors along a leading dim, or cat along a block boundary."""
    pieces, dim = args[0], args[1] if len(args) > 1 else 0
    if not all(isinstance(p, Fp8Blocks) for p in pieces):
        return None
    first = pieces[0]
    if any(p.block != first.block or p.dtype != first.dtype for p in pieces):
        return None
    rank = first.q.dim()
    if op == "torch.aten.stack":
        dim = dim % (rank + 1)
        if dim > rank - 2:
            return None
        q = torch.stack([p.q for p in pieces], dim)
        return (
            Fp8Blocks(q, torch.stack([p.scale for p in pieces], dim), first.block, first.dtype),
        )
    dim = dim % rank
    if dim >= rank - 2 and any(p.q.shape[dim] % first.block for p in pieces[:-1]):
        return None  # a piece ends inside a block: its blocks would mix with the next one's
    q = torch.cat([p.q for p in pieces], dim)
    scale = torch.cat([p.scale for p in pieces], dim)
    return (Fp8Blocks(q, scale, first.block, first.dtype),)


def bind_folded(
    pairs: list[FoldedPair],
    source: Mapping[str, torch.Tensor],
    fp8: Fp8Source | None = None,
) -> dict[str, torch.Tensor]:
    """Computes every folded pair from `source` now (in-memory models); key -> tensor."""
    out: dict[str, torch.Tensor] = {}
    for pair in pairs:
        q, scale, _ = pair.compute(source.__getitem__, fp8)
        out[pair.q_key], out[pair.scale_key] = q, scale
    return out
