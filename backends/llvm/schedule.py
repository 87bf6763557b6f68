"""Tiling and vectorization schedule (transform dialect) for the llvm target.

Runs on linalg on tensors, before bufferization. Every contraction ``linalg.generic`` (loops:
output dims ``parallel``, summed dims ``reduction``, body ``out + ext(a) * ext(b)``, any
bf16/f8 storage extended to fp32) gets one of two register-tiled schedules, chosen from its
indexing maps and static sizes:

- ``dot``: the summed dim is the innermost dim of both operands (``x · W^T`` on a weight stored
  ``[N, K]``, ``q · k^T``): tile the output to ``[mr, nr]`` (outer block of `nb` columns for
  reuse in L2), split the reduction by a vector width ``kv`` into a ``[mr, nr, kv]`` fp32
  partial that stays in registers (``vector.fma`` along K), reduce it horizontally once;
- ``outer``: the output's innermost dim is the innermost dim of one operand (``p · V`` on the
  latent cache): tile the output to ``[mr, nr]`` and the reduction by 1; a hoisted
  ``vector<mr x nr>`` accumulator takes broadcast multiply-adds. Not when the row dim also
  indexes that operand (``q · W_UK``, un-absorbed ``p · V``): this MLIR's vector lowering does
  not terminate on those, they stay loops.

The thread level: contractions above `PARALLEL_MACS` get an ``scf.forall`` over column blocks
(at most 16), lowered to OpenMP and run by the pool in ``support.py``.

Tile sizes divide the static sizes (a dynamic dim, e.g. an expert's rows, is tiled by 1) so
every tiled op is static and vectorizes without masks. Everything else stays scalar loops that
LLVM's own vectorizers handle; elementwise producers/consumers are fused by
``linalg-fuse-elementwise-ops`` before the schedule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlacc.dialects._mlir import ir
from mlacc.passes.registry import option, register_pass

from .codegen import run_stage

TAG = "llvm.sched"
FUSE = "builtin.module(func.func(linalg-fuse-elementwise-ops),canonicalize,cse)"
VECTOR_WIDTH = 16  # fp32 lanes of a 512-bit register
INNER = 'lowering_strategy = "innerreduction"'
# Bounds on the greedy pattern driver (they did not stop the blow-up `plan_of` excludes: that
# one is not only in the driver).
BOUND = "max_iterations = 16 : i64, max_num_rewrites = 2000000 : i64"


@dataclass(frozen=True)
class Plan:
    """The schedule of one contraction: tile sizes per level (one entry per loop)."""

    style: str  # "dot" | "outer"
    parallel: tuple[int, ...] | None  # scf.forall level over the output's columns (threads)
    outer: tuple[int, ...]  # cache blocking level (0 = not tiled)
    register: tuple[int, ...]  # register tile of the output (reduction 0 or 1)
    split: tuple[int, ...] | None  # dot: the reduction split (kv on the reduction loop)


def _divisor(n: int | None, target: int) -> int:
    """The largest power of two <= target that divides n (1 for a dynamic n)."""
    if n is None or n <= 0:
        return 1
    t = 1
    while t * 2 <= target and n % (t * 2) == 0:
        t *= 2
    return t


def _parallel_tile(n: int | None, base: int, chunks: int = 16) -> int:
    """A tile of the columns for the thread level: a multiple of `base` dividing n, giving
    at most `chunks` tiles (0: too few columns to split)."""
    if n is None or base <= 0 or n % base or n // base < 2:
        return 0
    k = 1
    while (n // base) % k or n // (base * k) > chunks:
        k += 1
    return base * k if n // (base * k) >= 2 else 0


def _dim_positions(amap: ir.AffineMap) -> list[int | None]:
    out = []
    for e in amap.results:
        try:
            out.append(ir.AffineDimExpr(e).position)
        except ValueError:
            out.append(None)
    return out


def _is_contraction(op: ir.Operation) -> bool:
    """A generic with one output whose body accumulates ``out + a * b`` (elementwise
    prologues on the inputs, e.g. a scale or an exp fused into its consumer, allowed)."""
    names = [o.name for o in op.regions[0].blocks[0].operations]
    if any(n.startswith(("tensor.", "linalg.index", "scf.")) for n in names):
        return False  # gathers (e.g. moe.combine) stay loops
    n_out = list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))[1]
    return "arith.mulf" in names and "arith.addf" in names and n_out == 1


PARALLEL_MACS = 1 << 18  # below this many multiply-adds, a fork/join costs more than it saves


def plan_of(op: ir.Operation, threads: bool = True) -> Plan | None:
    """The schedule of contraction generic `op`, or None (left to LLVM). With `threads`,
    a large one also gets a thread level (``scf.forall`` -> OpenMP) over its columns."""
    iters = ["reduction" in str(a) for a in ir.ArrayAttr(op.attributes["iterator_types"])]
    if sum(iters) != 1 or not _is_contraction(op):
        return None
    maps = [_dim_positions(ir.AffineMapAttr(a).value) for a in op.attributes["indexing_maps"]]
    if any(p is None for m in maps for p in m):
        return None
    n_loops = len(iters)
    sizes: list[int | None] = [None] * n_loops
    for value, m in zip(op.operands, maps):
        shape = ir.ShapedType(value.type)
        for axis, pos in enumerate(m):
            if not shape.is_dynamic_dim(axis):
                sizes[pos] = shape.get_dim_size(axis)
    r = iters.index(True)
    *in_maps, o_map = maps
    macs = 1
    for size in sizes:
        macs *= size or 1  # a dynamic dim (an expert's rows) counts as 1 row

    def forall(n_dim: int, base: int) -> tuple[int, ...] | None:
        if not threads or macs < PARALLEL_MACS:
            return None
        tile = _parallel_tile(sizes[n_dim], base)
        if not tile:
            return None
        return tuple(tile if i == n_dim else 0 for i in range(n_loops))

    parallel = [i for i in range(n_loops) if not iters[i]]
    if len(parallel) < 1 or not o_map or o_map[-1] != parallel[-1]:
        return None
    n = parallel[-1]
    m = parallel[-2] if len(parallel) > 1 else None
    with_r = [m_ for m_ in in_maps if r in m_]
    if len(with_r) >= 2 and all(m_[-1] == r for m_ in with_r):
        kv = _divisor(sizes[r], VECTOR_WIDTH)
        if kv < 4:
            return None
        mr = _divisor(sizes[m], 4) if m is not None else 1
        nr = _divisor(sizes[n], 8 if mr == 1 else 4)
        nb = _divisor(sizes[n], 64) if (m is not None and (sizes[m] or 1) >= 16) else 0
        outer = tuple(nb if i == n else 0 for i in range(n_loops))
        reg = tuple(mr if i == m else nr if i == n else 0 if i == r else 1 for i in range(n_loops))
        split = tuple(kv if i == r else 0 for i in range(n_loops))
        return Plan("dot", forall(n, max(nb, nr)), outer, reg, split)
    if any(m_ and m_[-1] == n for m_ in in_maps):
        nr = _divisor(sizes[n], 2 * VECTOR_WIDTH)
        if nr < 4:
            return None
        # m must not index the operand read along n (V [b, t, h, d] in un-absorbed p · V,
        # W_UK [h, d, c] in q · W_UK): with it, this MLIR's vector lowering loops without end
        # (even with m tiled by 1); such contractions stay loops for LLVM
        along_n = [m_ for m_ in in_maps if m_ and m_[-1] == n]
        if m is not None and any(m in a for a in along_n):
            return None
        mr = _divisor(sizes[m], 8) if m is not None else 1
        reg = tuple(mr if i == m else nr if i == n else 1 for i in range(n_loops))
        return Plan("outer", forall(n, nr), tuple(0 for _ in range(n_loops)), reg, None)
    return None


def _ints(sizes: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, sizes)) + "]"


def _tile(lines: list[str], src: str, dst: str, sizes: tuple[int, ...]) -> str:
    """A ``tile_using_for`` of handle `src`; returns the tiled op's handle (`dst`)."""
    loops = sum(1 for s in sizes if s)
    if not loops:
        return src
    res = ", ".join(["!transform.any_op"] * (loops + 1))
    handles = f"%{dst}_loops:{loops}" if loops > 1 else f"%{dst}_loop"
    lines.append(
        f"%{dst}, {handles} = transform.structured.tile_using_for %{src} "
        f"tile_sizes {_ints(sizes)} : (!transform.any_op) -> ({res})"
    )
    return dst


def _script(plans: list[Plan]) -> str:
    any_op = "!transform.any_op"
    body: list[str] = []
    vec: list[str] = []
    for i, plan in enumerate(plans):
        body.append(
            f"%m{i} = transform.structured.match attributes{{{TAG} = {i} : i64}} in %root "
            f": ({any_op}) -> {any_op}"
        )
        h = f"m{i}"
        if plan.parallel:
            body.append(
                f"%p{i}, %forall{i} = transform.structured.tile_using_forall %{h} "
                f"tile_sizes {_ints(plan.parallel)} : ({any_op}) -> ({any_op}, {any_op})"
            )
            h = f"p{i}"
        h = _tile(body, h, f"o{i}", plan.outer)
        h = _tile(body, h, f"r{i}", plan.register)
        if plan.style == "dot":
            body.append(
                f"%fill{i}, %part{i}, %comb{i}, %kl{i} = "
                f"transform.structured.tile_reduction_using_for %{h} by tile_sizes = "
                f"{_ints(plan.split)} : ({any_op}) -> ({any_op}, {any_op}, {any_op}, {any_op})"
            )
            vec += [f"fill{i}", f"part{i}", f"comb{i}"]
        else:
            vec.append(h)
    for h in vec:  # an op the vectorizer rejects stays a (tiled) loop nest
        body += [
            f"transform.sequence %{h} : {any_op} failures(suppress) {{",
            f"^bb0(%v: {any_op}):",
            f"  transform.structured.vectorize %v : {any_op}",
            "}",
        ]
    body += [
        f'%funcs = transform.structured.match ops{{["func.func"]}} in %root '
        f": ({any_op}) -> {any_op}",
        "transform.apply_patterns to %funcs {",
        "  transform.apply_patterns.linalg.tiling_canonicalization",
        "  transform.apply_patterns.scf.for_loop_canonicalization",
        "  transform.apply_patterns.vector.cast_away_vector_leading_one_dim",
        "  transform.apply_patterns.canonicalization",
        f"}} {{{BOUND}}} : {any_op}",
        f"transform.foreach %funcs : {any_op} {{",
        f"^bb0(%f: {any_op}):",
        f"  transform.apply_cse to %f : {any_op}",
        "}",
        f'%loops = transform.structured.match ops{{["scf.for"]}} in %root : ({any_op}) -> {any_op}',
        f"transform.foreach %loops : {any_op} {{",
        f"^bb0(%l: {any_op}):",
        f"  transform.loop.hoist_loop_invariant_subsets %l : {any_op}",
        "}",
        "transform.apply_patterns to %funcs {",
        '  transform.apply_patterns.vector.lower_contraction lowering_strategy = "outerproduct"',
        "  transform.apply_patterns.vector.transfer_permutation_patterns",
        f"  transform.apply_patterns.vector.multi_reduction_flattening {INNER}",
        f"  transform.apply_patterns.vector.multi_reduction_unrolling {INNER}",
        "  transform.apply_patterns.vector.lower_outerproduct",
        '  transform.apply_patterns.vector.lower_transpose lowering_strategy = "eltwise"',
        "  transform.apply_patterns.vector.lower_broadcast",
        "  transform.apply_patterns.vector.drop_unit_dims_with_shape_cast",
        "  transform.apply_patterns.vector.cast_away_vector_leading_one_dim",
        "  transform.apply_patterns.canonicalization",
        f"}} {{{BOUND}}} : {any_op}",
    ]
    inner = "\n".join(f"    {line}" for line in body)
    return (
        "module attributes {transform.with_named_sequence} {\n"
        f"  transform.named_sequence @__transform_main(%root: {any_op} "
        "{transform.readonly}) {\n"
        f"{inner}\n    transform.yield\n  }}\n}}"
    )


def tag_contractions(module: ir.Operation, threads: bool = True) -> list[Plan]:
    """Marks every schedulable contraction with ``llvm.sched = i``; returns the plans."""
    plans: list[Plan] = []
    i64 = ir.IntegerType.get_signless(64, context=module.context)

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "linalg.generic":
            plan = plan_of(op, threads)
            if plan is not None:
                op.attributes[TAG] = ir.IntegerAttr.get(i64, len(plans))
                plans.append(plan)
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    return plans


def apply_schedule(module: ir.Module | ir.Operation, threads: bool = True) -> list[Plan]:
    """Fuses elementwise ops, then tiles and vectorizes the contractions in place (with
    `threads`, large ones also get a ``scf.forall`` thread level)."""
    op = module.operation
    run_stage(op, FUSE, "fuse-elementwise")
    with op.context:
        plans = tag_contractions(op, threads)
    if not plans:
        return plans
    script = _script(plans)
    if os.environ.get("MLACC_LLVM_SCHEDULE_DUMP"):
        print(script)
    body = op.regions[0].blocks[0]
    with op.context:
        library = ir.Module.parse(script)
        op.attributes["transform.with_named_sequence"] = ir.UnitAttr.get()
        for seq in library.body.operations:
            body.append(seq.operation)
    try:
        run_stage(op, "builtin.module(transform-interpreter)", "schedule")
    finally:
        for seq in list(body.operations):
            if seq.operation.name == "transform.named_sequence":
                seq.operation.erase()
        del op.attributes["transform.with_named_sequence"]
        for tagged in _tagged(op):
            del tagged.attributes[TAG]
    run_stage(op, "builtin.module(canonicalize,cse)", "schedule")
    return plans


def _tagged(module: ir.Operation) -> list[ir.Operation]:
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if TAG in op.attributes:
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    return found


@dataclass(frozen=True)
class LlvmScheduleOptions:
    """Options of `--llvm-schedule`."""

    threads: bool = option(True, "give large contractions a scf.forall (thread) level")


def _run(module: ir.Operation, options: LlvmScheduleOptions) -> None:
    apply_schedule(module, threads=options.threads)


register_pass(
    "llvm-schedule",
    "Tile and vectorize the contractions of linalg-on-tensors IR for the llvm (CPU) target "
    "(after --llvm-lower): register tiles, vector.fma / vector.outerproduct, scf.forall threads",
    LlvmScheduleOptions,
    _run,
)
