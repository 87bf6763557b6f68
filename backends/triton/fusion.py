"""Plan-level fusions of the `triton` target (pure plan rewrites; no MLIR).

Each rewrite replaces steps whose intermediate values nobody else reads by one step of a
``triton.*`` op that the run side implements with one kernel (`mlacc.runtime.triton`):

- ``moe.grouped_matmul`` / ``fp8.grouped_matmul`` -> ``moe.swiglu``:
  ``triton.grouped_matmul_swiglu`` (SwiGLU in the GEMM epilogue);
- grouped matmul -> ``moe.combine`` whose ``row_of`` comes from ``moe.dispatch``:
  ``triton.grouped_matmul_weighted`` (routed weight in the epilogue, fp32 rows) +
  ``triton.combine_weighted`` (the sum);
- ``torch.aten.add.Tensor(a, b, 1)`` -> ``mla.rms_norm``: ``triton.add_rms_norm`` (both
  results: the sum, still read by the next residual add, and the normalized rows);
- ``mla.rms_norm`` of the latent slice of ``kv`` + ``cat`` with its rotary slice ->
  ``mla.cache_update``, where nothing else reads the normalized latent:
  ``triton.norm_cache_update`` (the norm in the cache write);
- ``moe.router`` -> ``new_full`` + ``cat`` of the merged shared experts' columns (fixed ids,
  weight 1; moe-group-experts): ``triton.router_shared`` (the router writes those columns);
- ``cat`` on the last dim of ``mla.rms_norm`` results nothing else reads (MTP's normalized
  embedding and hidden state): ``triton.rms_norm_cat`` (each norm writes its columns).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ...runtime.plan import Arg, Function, Step, lit, lst, ref

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
    made += _fuse_norm_cache_update(fn, info)
    made += _fuse_router_shared(fn, info)
    made += _fuse_rms_norm_cat(fn, info)
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


def _last_dim(arg: Arg, info: dict[int, ValueInfo], of: int | None) -> bool:
    """Whether the literal dim `arg` names the last dim of value `of`."""
    if of not in info or "lit" not in arg or not isinstance(arg["lit"], int):
        return False
    rank = len(info[of].shape)
    return arg["lit"] in (rank - 1, -1)


def _column_slice(step: Step, info: dict[int, ValueInfo]) -> tuple[int, int, int] | None:
    """``(source, start, end)`` of a step-1 ``slice.Tensor`` on the source's last dim (end
    clamped to its width), else None."""
    if step.op != "torch.aten.slice.Tensor" or len(step.args) != 5:
        return None
    src = _ref_of(step.args[0])
    if src is None or not _last_dim(step.args[1], info, src) or step.args[4] != lit(1):
        return None
    width = info[src].shape[-1]
    start, end = step.args[2].get("lit"), step.args[3].get("lit")
    if width is None or not isinstance(start, int) or not isinstance(end, int):
        return None
    return src, start, min(end, width)


def _cat_of(step: Step, info: dict[int, ValueInfo]) -> list[int] | None:
    """The refs a ``cat`` on the last dim joins (all refs), else None."""
    if step.op != "torch.aten.cat" or len(step.args) != 2 or "list" not in step.args[0]:
        return None
    parts = [_ref_of(a) for a in step.args[0]["list"]]
    if None in parts or not _last_dim(step.args[1], info, step.results[0]):
        return None
    return parts  # type: ignore[return-value]


def _fuse_norm_cache_update(fn: Function, info: dict[int, ValueInfo]) -> Counter[str]:
    made: Counter[str] = Counter()
    changed = True
    while changed:
        changed = False
        uses, producer = _uses(fn), _producer(fn)
        for i, step in enumerate(fn.steps):
            if step.op != "mla.cache_update" or len(step.args) != 6:
                continue
            entries, cos = _ref_of(step.args[1]), _ref_of(step.args[3])
            if entries is None or uses[entries] != 1 or entries not in producer or cos is None:
                continue
            ci, cat = producer[entries]
            parts = _cat_of(cat, info)
            if parts is None or len(parts) != 2 or parts[0] not in producer:
                continue
            normed, pe = parts
            ni, norm = producer[normed]
            if norm.op != "mla.rms_norm" or uses[normed] != 1 or pe not in producer:
                continue
            latent = _ref_of(norm.args[0])
            if latent not in producer or _ref_of(norm.args[1]) is None:
                continue
            li, lat = producer[latent]
            pi, rot = producer[pe]
            a, b = _column_slice(lat, info), _column_slice(rot, info)
            if a is None or b is None or a[0] != b[0] or a[1] != 0 or b[1] != a[2]:
                continue
            kv = a[0]
            width, dr = info[kv].shape[-1], info[cos].shape[-1] if cos in info else None
            if b[2] != width or dr is None or 2 * dr != width - a[2]:
                continue
            # at the update's place: kv and the weight exist before the norm already
            fused = Step(
                "triton.norm_cache_update",
                [step.args[0], ref(kv), norm.args[1], *step.args[2:]],
                list(step.results),
                {**norm.attrs, **step.attrs},
                step.loc,
                in_place=step.in_place,
            )
            dead = {ci, ni} | {k for k, v in ((pi, pe), (li, latent)) if uses[v] == 1}
            fn.steps = [fused if k == i else s for k, s in enumerate(fn.steps) if k not in dead]
            made["triton.norm_cache_update"] += 1
            changed = True
            break
    return made


def _filled_columns(
    cat: Step, first: int, producer: dict[int, tuple[int, Step]], uses: Counter[int]
) -> tuple[list[float | int], list[int]] | None:
    """The fill of each column a ``cat`` appends after `first` (all ``new_full`` like
    `first`, default dtype, read by the cat alone) and those steps' indices, else None."""
    fills: list[float | int] = []
    steps: list[int] = []
    for r in _refs(cat.args)[1:]:
        k, nf = producer.get(r, (-1, None))
        if nf is None or nf.op != "torch.aten.new_full" or _ref_of(nf.args[0]) != first:
            return None
        if uses[r] != 1:
            return None
        size, fill = nf.args[1].get("list", []), nf.args[2].get("lit")
        if len(size) != 2 or not isinstance(size[1].get("lit"), int) or fill is None:
            return None
        if any(a != lit(None) for a in nf.args[3:]):
            return None
        fills += [fill] * size[1]["lit"]
        steps.append(k)
    return fills, steps


def _fuse_router_shared(fn: Function, info: dict[int, ValueInfo]) -> Counter[str]:
    made: Counter[str] = Counter()
    changed = True
    while changed:
        changed = False
        consumers, producer, uses = _consumers(fn), _producer(fn), _uses(fn)
        for i, step in enumerate(fn.steps):
            if step.op != "moe.router" or None in step.results:
                continue
            found = []
            for value in step.results:
                users = consumers.get(value, [])
                cats = [(j, u) for j, u in users if u.op == "torch.aten.cat"]
                parts = _cat_of(cats[0][1], info) if len(cats) == 1 else None
                if parts is None or parts[0] != value or cats[0][1].results[0] is None:
                    break
                filled = _filled_columns(cats[0][1], value, producer, uses)
                if filled is None or len(users) != 1 + len(filled[1]):
                    break  # another reader of the router's result
                found.append((cats[0], *filled))
            if len(found) != 2:
                continue
            (wj, wcat), wfills, wsteps = found[0]
            (ij, icat), ifills, isteps = found[1]
            n = len(ifills)
            first = ifills[0] if ifills else None
            if not isinstance(first, int) or len(wfills) != n:
                continue
            if ifills != list(range(first, first + n)):
                continue
            if len(set(wfills)) != 1:
                continue
            fused = Step(
                "triton.router_shared",
                step.args,
                [wcat.results[0], icat.results[0]],
                {
                    **step.attrs,
                    "shared_count": n,
                    "shared_first": first,
                    "shared_weight": float(wfills[0]),
                },
                step.loc,
            )
            dead = {wj, ij, *wsteps, *isteps}
            fn.steps = [fused if k == i else s for k, s in enumerate(fn.steps) if k not in dead]
            made["triton.router_shared"] += 1
            changed = True
            break
    return made


def _fuse_rms_norm_cat(fn: Function, info: dict[int, ValueInfo]) -> Counter[str]:
    made: Counter[str] = Counter()
    uses, producer = _uses(fn), _producer(fn)
    drop: set[int] = set()
    for i, step in enumerate(fn.steps):
        parts = _cat_of(step, info)
        if parts is None or len(parts) < 2 or step.results[0] not in info:
            continue
        norms = [producer.get(p, (-1, None)) for p in parts]
        if any(
            n is None or n.op != "mla.rms_norm" or uses[p] != 1 for p, (_, n) in zip(parts, norms)
        ):
            continue
        if any(info.get(p) is None or info[p].dtype != info[step.results[0]].dtype for p in parts):
            continue
        fn.steps[i] = Step(
            "triton.rms_norm_cat",
            [lst([n.args[0] for _, n in norms]), lst([n.args[1] for _, n in norms])],
            list(step.results),
            {"eps": [n.attrs["eps"] for _, n in norms]},
            step.loc,
        )
        drop.update(k for k, _ in norms)
        made["triton.rms_norm_cat"] += 1
    fn.steps = [s for k, s in enumerate(fn.steps) if k not in drop]
    return made
