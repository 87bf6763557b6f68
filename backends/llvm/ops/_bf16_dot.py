"""bf16 matmuls on AVX512-BF16: ``y [M, N] = x [M, K] · w [N, K]^T`` as a register-tiled loop
nest around ``x86.avx512.dot`` (``vdpbf16ps``: 32 bf16 products summed pairwise into 16 fp32
lanes per instruction), not the widen-to-fp32 contraction the schedule vectorizes, which runs
at about a third of the CPU's bf16 rate.

Tiles: ``mr x nr`` output elements, each a ``vector<16xf32>`` partial carried across K in
steps of 32 and reduced horizontally once (``mr = 4, nr = 4`` when M allows, else one row and
``nr = 8``); an ``scf.forall`` over blocks of `COLUMN_BLOCK` columns (threads, and a weight
block that stays in L2 while the rows go by). Partial sums are fp32; the sum order differs
from a sequential fp32 dot, so results match the reference within bf16 rounding.
"""

from __future__ import annotations

from mlacc.runtime.llvm import host_cpu

from ..emit import TT, Names

COLUMN_BLOCK = 64
K_STEP = 32


def available(xt: TT, wt: TT) -> bool:
    """Whether ``x · w^T`` can use the kernel: bf16 operands, K a multiple of 32, N of 8, and
    a compiling CPU with AVX512-BF16 (the artifact records it; another CPU refuses to load)."""
    k = xt.shape[-1]
    n = wt.shape[0]
    return (
        xt.elem == "bf16"
        and wt.elem == "bf16"
        and wt.rank == 2
        and k is not None
        and k % K_STEP == 0
        and n is not None
        and n % 8 == 0
        and "avx512_bf16" in host_cpu()["features"]
    )


def matmul_bf16(
    lines: list[str], names: Names, x: str, xt: TT, w: str, wt: TT, rows: str | None = None
) -> tuple[str, TT]:
    """``x [M, K] · w [N, K]^T`` in bf16 (fp32 accumulation); M static, or dynamic with
    `rows` its SSA value. Returns the result name and type ``[M, N] bf16``."""
    m, k = xt.shape
    n = wt.shape[0]
    mr = 4 if m is not None and m % 4 == 0 else 1
    nr = 4 if mr == 4 else 8
    block = COLUMN_BLOCK if n % COLUMN_BLOCK == 0 and n // COLUMN_BLOCK >= 2 else n
    out_t = TT((m, n), "bf16")
    tile_t = TT((m, block), "bf16")
    p = names("bd")  # prefix of this kernel's SSA names
    dyn = rows or ""
    m_size = rows if rows is not None else str(m)
    accs = [f"{p}_a{i}_{j}" for i in range(mr) for j in range(nr)]
    sums = [f"{p}_s{i}_{j}" for i in range(mr) for j in range(nr)]
    vec = "vector<16xf32>"
    lines += [
        f"{p}_c0 = arith.constant 0 : index",
        f"{p}_c1 = arith.constant 1 : index",
        f"{p}_mr = arith.constant {mr} : index",
        f"{p}_nr = arith.constant {nr} : index",
        f"{p}_ks = arith.constant {K_STEP} : index",
        f"{p}_k = arith.constant {k} : index",
        f"{p}_nb = arith.constant {block} : index",
        f"{p}_nbs = arith.constant {n // block} : index",
        f"{p}_pad = arith.constant 0.000000e+00 : bf16",
        f"{p}_zero = arith.constant dense<0.000000e+00> : {vec}",
        f"{p}_m = arith.addi {rows}, {p}_c0 : index"
        if rows is not None
        else f"{p}_m = arith.constant {m} : index",
        *[f"{p}_i{v} = arith.constant {v} : index" for v in range(max(mr, nr))],
        f"{p}_init = tensor.empty({dyn}) : {out_t}",
        f"{p}_res = scf.forall ({p}_b) in ({n // block}) shared_outs({p}_o = {p}_init) "
        f"-> ({out_t}) {{",
        f"  {p}_n0 = arith.muli {p}_b, {p}_nb : index",
        f"  {p}_t0 = tensor.empty({dyn}) : {tile_t}",
        f"  {p}_tile = scf.for {p}_mi = {p}_c0 to {p}_m step {p}_mr iter_args({p}_t = {p}_t0) "
        f"-> ({tile_t}) {{",
        f"    {p}_row = scf.for {p}_nj = {p}_c0 to {p}_nb step {p}_nr iter_args({p}_u = {p}_t) "
        f"-> ({tile_t}) {{",
        f"      {p}_nn = arith.addi {p}_n0, {p}_nj : index",
        f"      {p}_acc:{mr * nr} = scf.for {p}_kk = {p}_c0 to {p}_k step {p}_ks iter_args("
        + ", ".join(f"{a} = {p}_zero" for a in accs)
        + f") -> ({', '.join([vec] * (mr * nr))}) {{",
    ]
    body: list[str] = []
    for i in range(mr):
        body += [
            f"{p}_xi{i} = arith.addi {p}_mi, {p}_i{i} : index",
            f"{p}_xv{i} = vector.transfer_read {x}[{p}_xi{i}, {p}_kk], {p}_pad "
            f"{{in_bounds = [true]}} : {xt}, vector<32xbf16>",
        ]
    for j in range(nr):
        body += [
            f"{p}_wj{j} = arith.addi {p}_nn, {p}_i{j} : index",
            f"{p}_wv{j} = vector.transfer_read {w}[{p}_wj{j}, {p}_kk], {p}_pad "
            f"{{in_bounds = [true]}} : {wt}, vector<32xbf16>",
        ]
    outs = []
    for i in range(mr):
        for j in range(nr):
            d = f"{p}_d{i}_{j}"
            body.append(
                f"{d} = x86.avx512.dot {accs[i * nr + j]}, {p}_xv{i}, {p}_wv{j} "
                f": vector<32xbf16> -> {vec}"
            )
            outs.append(d)
    body.append(f"scf.yield {', '.join(outs)} : {', '.join([vec] * len(outs))}")
    lines += [f"        {line}" for line in body]
    lines.append("      }")
    store: list[str] = []
    cur = f"{p}_u"
    for i in range(mr):
        for j in range(nr):
            s = sums[i * nr + j]
            nxt = f"{p}_ins{i}_{j}"
            store += [
                f"{s} = vector.reduction <add>, {p}_acc#{i * nr + j} : {vec} into f32",
                f"{s}b = arith.truncf {s} : f32 to bf16",
                f"{p}_ri{i}_{j} = arith.addi {p}_mi, {p}_i{i} : index",
                f"{p}_ci{i}_{j} = arith.addi {p}_nj, {p}_i{j} : index",
                f"{nxt} = tensor.insert {s}b into {cur}[{p}_ri{i}_{j}, {p}_ci{i}_{j}] : {tile_t}",
            ]
            cur = nxt
    store.append(f"scf.yield {cur} : {tile_t}")
    lines += [f"      {line}" for line in store]
    lines += [
        "    }",
        f"    scf.yield {p}_row : {tile_t}",
        "  }",
        "  scf.forall.in_parallel {",
        f"    tensor.parallel_insert_slice {p}_tile into {p}_o[0, {p}_n0] [{m_size}, {block}] "
        f"[1, 1] : {tile_t} into {out_t}",
        "  }",
        "}",
    ]
    return f"{p}_res", out_t
