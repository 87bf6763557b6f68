"""Plan-level fusions of the `triton` target (pure plan rewrites; no MLIR).

Each rewrite replaces steps whose intermediate values nobody else reads by one step of a
``triton.*`` op that the run side implements with one kernel (`mlacc.runtime.triton`):

- ``moe.grouped_matmul`` / ``fp8.grouped_matmul`` -> ``moe.swiglu``:
  ``triton.grouped_matmul_swiglu`` (SwiGLU in the GEMM epilogue);
- grouped matmul -> ``moe.combine`` whose ``row_of`` comes from ``moe.dispatch``:
  ``triton.grouped_matmul_weighted`` (routed weight in the epilogue, fp32 rows) +
  ``triton.combine_weighted`` (the sum);
- ``torch.aten.add.Tensor(a, b, 1)`` -> ``mla.rms_norm``: ``triton.add_rms_norm`` (both
  results: the sum, still read by the next residual add, and the normalized rows).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ...runtime.plan import Arg, Function, Step, lit, ref

GROUPED = ("moe.grouped_matmul", "fp8.grouped_matmul")


@dataclass(frozen=True)
class ValueInfo:
    """Shape and dtype of a plan value (from the IR types)."""

    shape: tuple[int | None, ...]
    dtype: str


def _refs(args: list[Arg]) -> list[int]:
    out: list[int] = []
    for a in args:
        if "ref" in a:
            out.append(a["ref"])
        elif "list" in a:
            out += _refs(a["list"])
    return out


def _uses(fn: Function) -> Counter[int]:
    uses: Counter[int] = Counter()
    for step in fn.steps:
        uses.update(_refs(step.args))
    uses.update(_refs(fn.outputs))
    return uses


def _ref_of(arg: Arg) -> int | None:
    return arg.get("ref")


def fuse_function(fn: Function, info: dict[int, ValueInfo]) -> Counter[str]:
    """Applies every fusion to `fn` in place; returns how many of each fused op it made."""
    made: Counter[str] = Counter()
    made += _fuse_swiglu(fn)
    made += _fuse_weighted_combine(fn, info)
    made += _fuse_add_rms_norm(fn, info)
    return made


def _producer(fn: Function) -> dict[int, tuple[int, Step]]:
    out = {}
    for i, step in enumerate(fn.steps):
        for r in step.results:
            if r is not None:
                out[r] = (i, step)
    return out


def _consumers(fn: Function) -> dict[int, list[tuple[int, Step]]]:
    out: dict[int, list[tuple[int, Step]]] = {}
    for i, step in enumerate(fn.steps):
        for r in _refs(step.args):
            out.setdefault(r, []).append((i, step))
    return out


def _fuse_swiglu(fn: Function) -> Counter[str]:
    made: Counter[str] = Counter()
    uses, consumers = _uses(fn), _consumers(fn)
    drop: set[int] = set()
    for i, step in enumerate(fn.steps):
        if step.op not in GROUPED or step.results[0] is None:
            continue
        h = step.results[0]
        users = consumers.get(h, [])
        if uses[h] != 1 or len(users) != 1:
            continue
        j, user = users[0]
        if user.op != "moe.swiglu" or _ref_of(user.args[0]) != h:
            continue
        fn.steps[i] = Step(
            "triton.grouped_matmul_swiglu",
            step.args,
            list(user.results),
            dict(step.attrs),
            step.loc,
        )
        drop.add(j)
        made["triton.grouped_matmul_swiglu"] += 1
    fn.steps = [s for k, s in enumerate(fn.steps) if k not in drop]
    return made


def _fuse_weighted_combine(fn: Function, info: dict[int, ValueInfo]) -> Counter[str]:
    made: Counter[str] = Counter()
    uses, consumers, producer = _uses(fn), _consumers(fn), _producer(fn)
    replace: dict[int, list[Step]] = {}
    drop: set[int] = set()
    for i, step in enumerate(fn.steps):
        if step.op not in GROUPED or step.results[0] is None:
            continue
        y = step.results[0]
        users = consumers.get(y, [])
        if uses[y] != 1 or len(users) != 1:
            continue
        j, comb = users[0]
        if comb.op != "moe.combine" or _ref_of(comb.args[0]) != y:
            continue
        row_of = _ref_of(comb.args[1])
        src = producer.get(row_of) if row_of is not None else None
        # one dispatched row per (token, slot): only dispatch's row_of guarantees it
        if src is None or src[1].op != "moe.dispatch" or src[1].results[1] != row_of:
            continue
        out = comb.results[0]
        if y not in info or out is None or out not in info:
            continue
        attrs = dict(step.attrs)
        attrs["out_dtype"] = info[y].dtype
        gmw = Step(
            "triton.grouped_matmul_weighted", [*step.args, *comb.args[1:3]], [y], attrs, step.loc
        )
        cw = Step(
            "triton.combine_weighted",
            [ref(y), comb.args[1]],
            [out],
            {"out_dtype": info[out].dtype},
            comb.loc,
        )
        drop.add(i)
        replace[j] = [gmw, cw]
        made["triton.grouped_matmul_weighted"] += 1
    steps: list[Step] = []
    for k, s in enumerate(fn.steps):
        if k in drop:
            continue
        steps += replace.get(k, [s])
    fn.steps = steps
    return made


def _fuse_add_rms_norm(fn: Function, info: dict[int, ValueInfo]) -> Counter[str]:
    made: Counter[str] = Counter()
    changed = True
    while changed:
        changed = False
        consumers, producer = _consumers(fn), _producer(fn)
        for i, step in enumerate(fn.steps):
            if step.op != "torch.aten.add.Tensor" or len(step.args) != 3:
                continue
            if step.args[2] != lit(1) or step.results[0] is None:
                continue
            a, b, s = _ref_of(step.args[0]), _ref_of(step.args[1]), step.results[0]
            if a is None or b is None or not all(v in info for v in (a, b, s)):
                continue
            if not (info[a] == info[b] == info[s]) or None in info[s].shape:
                continue
            norms = [(j, u) for j, u in consumers.get(s, []) if u.op == "mla.rms_norm"]
            norms = [(j, u) for j, u in norms if _ref_of(u.args[0]) == s]
            if not norms:
                continue
            j, norm = norms[0]
            w = _ref_of(norm.args[1])
            if w is None or w not in producer:
                continue
            wi, wstep = producer[w]
            if wi > i and wstep.op != "mlacc.weight":
                continue  # the weight is computed after the add: cannot hoist it
            fused = Step(
                "triton.add_rms_norm",
                [step.args[0], step.args[1], norm.args[1]],
                [s, norm.results[0]],
                dict(norm.attrs),
                norm.loc,
            )
            steps = list(fn.steps)
            steps[i] = fused
            del steps[j]
            if wi > i:  # hoist the weight binding above the fused step
                del steps[wi if wi < j else wi - 1]
                steps.insert(i, wstep)
            fn.steps = steps
            made["triton.add_rms_norm"] += 1
            changed = True
            break
    return made
