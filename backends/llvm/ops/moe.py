"""DeepSeekMoE: `moe.router` (sigmoid/softmax, bias, group-limited top-k), `moe.dispatch`
(counting sort into block-padded expert segments), `moe.grouped_matmul`, `moe.swiglu`,
`moe.combine` and the dense `moe.mlp`.

Routing and dispatch are scalar ``scf.for`` loop nests over tokens (they are data-dependent
and tiny); the matmuls are fp32 `einsum` generics.
"""

from __future__ import annotations

from ..emit import (
    TT,
    LoweringError,
    Names,
    dims,
    einsum,
    empty,
    extract_slice,
    f32,
    filled,
    from_f32,
    generic,
    to_f32,
)
from . import Kernel, fused_lowering, lowering
from . import _bf16_dot as bf16_dot
from ._common import linear


def _silu_mul(body: list[str], names: Names, gate: str, up: str, elem: str) -> str:
    """``silu(gate) * up`` with silu in fp32 rounded to `elem`, the product in `elem`."""
    g = to_f32(body, names, gate, elem)
    body += [
        f"%ng = arith.negf {g} : f32",
        "%eg = math.exp %ng : f32",
        "%one = arith.constant 1.000000e+00 : f32",
        "%den = arith.addf %one, %eg : f32",
        f"%silu = arith.divf {g}, %den : f32",
    ]
    silu = from_f32(body, names, "%silu", elem)
    s2 = to_f32(body, names, silu, elem)
    u = to_f32(body, names, up, elem)
    body.append(f"%prod = arith.mulf {s2}, {u} : f32")
    return from_f32(body, names, "%prod", elem)


@lowering("moe.swiglu")
def swiglu(k: Kernel) -> list[str]:
    """``silu(h[..., :I]) * h[..., I:]``."""
    h, ht = k.arg("h"), k.type("h")
    r, inter = ht.rank, ht.shape[-1] // 2
    lines: list[str] = []
    lead = list(ht.shape[:-1])
    g, gt = extract_slice(lines, k.names, h, ht, [0] * r, [*lead, inter])
    u, _ = extract_slice(lines, k.names, h, ht, [0] * (r - 1) + [inter], [*lead, inter])
    out = empty(lines, k.names, gt)
    body: list[str] = []
    y = _silu_mul(body, k.names, "%in0", "%in1", ht.elem)
    ident = dims(*range(r))
    lines.append(
        generic("%r", r, [(g, gt, ident), (u, gt, ident)], [(out, gt, ident)], "p" * r, body, [y])
    )
    lines.append(f"return %r : {gt}")
    return lines


@lowering("moe.mlp")
def mlp(k: Kernel) -> list[str]:
    """``w_down · (silu(w_gate · x) * (w_up · x))``."""
    names = k.names
    x, xt = k.arg("x"), k.type("x")
    lines: list[str] = []
    g, gt = linear(lines, names, x, xt, k.arg("w_gate"), k.type("w_gate"))
    u, _ = linear(lines, names, x, xt, k.arg("w_up"), k.type("w_up"))
    out = empty(lines, names, gt)
    body: list[str] = []
    y = _silu_mul(body, names, "%in0", "%in1", xt.elem)
    ident = dims(*range(gt.rank))
    lines.append(
        generic(
            "%act",
            gt.rank,
            [(g, gt, ident), (u, gt, ident)],
            [(out, gt, ident)],
            "p" * gt.rank,
            body,
            [y],
        )
    )
    d, dt = linear(lines, names, "%act", gt, k.arg("w_down"), k.type("w_down"))
    lines.append(f"return {d} : {dt}")
    return lines


@lowering("moe.combine")
def combine(k: Kernel) -> list[str]:
    """``out[n, d] = sum_k weights[n,k] * y[row_of[n,k], d]`` in fp32, y's dtype."""
    y, yt = k.arg("y"), k.type("y")
    rows, rt = k.arg("row_of"), k.type("row_of")
    w, wt = k.arg("weights"), k.type("weights")
    n, d = rt.shape[0], yt.shape[1]
    lines: list[str] = []
    acc_t = TT((n, d), "f32")
    init = filled(lines, k.names, acc_t, "0.000000e+00")
    body = [
        f"%row = arith.index_cast %in0 : {rt.elem} to index",
        "%d = linalg.index 1 : index",
        f"%yv = tensor.extract {y}[%row, %d] : {yt}",
    ]
    yf = to_f32(body, k.names, "%yv", yt.elem)
    wf = to_f32(body, k.names, "%in1", wt.elem)
    body += [f"%p = arith.mulf {yf}, {wf} : f32", "%s = arith.addf %out0, %p : f32"]
    lines.append(
        generic(
            "%acc",
            3,
            [(rows, rt, dims(0, 2)), (w, wt, dims(0, 2))],
            [(init, acc_t, dims(0, 1))],
            "ppr",
            body,
            ["%s"],
        )
    )
    from ._common import convert

    out, out_t = convert(lines, k.names, "%acc", acc_t, yt.elem)
    lines.append(f"return {out} : {out_t}")
    return lines


@lowering("moe.grouped_matmul")
def grouped_matmul(k: Kernel) -> list[str]:
    """``out[r] = w[e] · x[r]`` for rows ``offsets[e] <= r < offsets[e+1]``; other rows 0."""
    x, xt = k.arg("x"), k.type("x")
    w, wt = k.arg("w"), k.type("w")
    off, ot = k.arg("expert_offsets"), k.type("expert_offsets")
    return _grouped(k.names, x, xt, w, wt, off, ot, xt.elem, _plain_rows)


def _plain_rows(
    lines: list[str],
    names: Names,
    x: str,
    xt: TT,
    w: str,
    wt: TT,
    out_elem: str,
    rows: str | None = None,
) -> tuple[str, TT]:
    """The rows ``x [M, K]`` of one expert times ``w [N, K]^T`` (fp32), cast to `out_elem`;
    M is static, or dynamic with `rows` its SSA value."""
    if out_elem == "bf16" and bf16_dot.available(xt, wt):
        return bf16_dot.matmul_bf16(lines, names, x, xt, w, wt, rows)
    n = wt.shape[0]
    acc_t = TT((xt.shape[0], n), "f32")
    dyn = rows or ""
    acc_e, zero, acc0 = names("acc_e"), names("zero_e"), names("acc0")
    lines += [
        f"{acc_e} = tensor.empty({dyn}) : {acc_t}",
        f"{zero} = arith.constant 0.000000e+00 : f32",
        f"{acc0} = linalg.fill ins({zero} : f32) outs({acc_e} : {acc_t}) -> {acc_t}",
    ]
    y, yt = einsum(lines, names, "mk,nk->mn", x, xt, w, wt, "f32", init=acc0)
    if out_elem == "f32":
        return y, yt
    out_t = yt.like(elem=out_elem)
    body: list[str] = []
    v = from_f32(body, names, "%in0", out_elem)
    cv_e, ycv = names("cv_e"), names("ycv")
    lines.append(f"{cv_e} = tensor.empty({dyn}) : {out_t}")
    lines.append(
        generic(ycv, 2, [(y, yt, dims(0, 1))], [(cv_e, out_t, dims(0, 1))], "pp", body, [v])
    )
    return ycv, out_t


def _trim_zero_rows(x: str, xt: TT, lo: str, length: str, out: str) -> list[str]:
    """Body lines: `out` = `length` less the all-zero rows at the end of the segment
    ``x[lo : lo + length]``. `moe.dispatch` pads each expert's segment with zero rows up to its
    block size (16 by default: a batch-1 decode step would multiply 16 rows per expert for 1
    real one); their product is zero, which the zero-filled output already holds."""
    kdim = xt.shape[1]
    one = "%tz_one"
    lines = [
        f"{one} = arith.constant 1 : index",
        f"%tz_k = arith.constant {kdim} : index",
        "%tz_f = arith.constant false",
        "%tz_z = arith.constant 0.000000e+00 : f32",
        f"{out} = scf.while (%tz_n = {length}) : (index) -> index {{",
        "  %tz_pos = arith.cmpi sgt, %tz_n, %c0 : index",
        "  %tz_go = scf.if %tz_pos -> (i1) {",
        f"    %tz_r0 = arith.addi {lo}, %tz_n : index",
        f"    %tz_r = arith.subi %tz_r0, {one} : index",
        f"    %tz_nz = scf.for %tz_j = %c0 to %tz_k step {one} iter_args(%tz_a = %tz_f) -> (i1) {{",
        f"      %tz_v = tensor.extract {x}[%tz_r, %tz_j] : {xt}",
    ]
    body: list[str] = []
    v = to_f32(body, Names(), "%tz_v", xt.elem)
    lines += [f"      {line}" for line in body]
    lines += [
        f"      %tz_ne = arith.cmpf une, {v}, %tz_z : f32",
        "      %tz_o = arith.ori %tz_a, %tz_ne : i1",
        "      scf.yield %tz_o : i1",
        "    }",
        "    %tz_zero = arith.cmpi eq, %tz_nz, %tz_f : i1",
        "    scf.yield %tz_zero : i1",
        "  } else {",
        "    scf.yield %tz_f : i1",
        "  }",
        "  scf.condition(%tz_go) %tz_n : index",
        "} do {",
        "^bb0(%tz_m: index):",
        f"  %tz_next = arith.subi %tz_m, {one} : index",
        "  scf.yield %tz_next : index",
        "}",
    ]
    return ["  " + line for line in lines]


@fused_lowering("moe.grouped_matmul", "moe.swiglu")
def grouped_matmul_swiglu(k: Kernel) -> list[str]:
    """`moe.swiglu` of `moe.grouped_matmul`, per expert on its rows only (block padding rows
    stay 0 = swiglu(0)): no ``[rows, 2I]`` intermediate, no activation on padding."""
    x, xt = k.arg("x"), k.type("x")
    w, wt = k.arg("w"), k.type("w")
    off, ot = k.arg("expert_offsets"), k.type("expert_offsets")
    return _grouped(k.names, x, xt, w, wt, off, ot, xt.elem, _plain_rows, epilogue=swiglu_rows)


def swiglu_rows(
    lines: list[str], names: Names, y: str, yt: TT, rows: str | None = None
) -> tuple[str, TT]:
    """``silu(y[:, :I]) * y[:, I:]`` of one expert's ``y [M, 2I]`` rows (M static, or dynamic
    with `rows` its SSA value)."""
    m, inter = yt.shape[0], yt.shape[1] // 2
    half = yt.like((m, inter))
    size = rows if rows is not None else str(m)
    g, u, init, out = names("sw_g"), names("sw_u"), names("sw_e"), names("sw")
    lines += [
        f"{g} = tensor.extract_slice {y}[0, 0] [{size}, {inter}] [1, 1] : {yt} to {half}",
        f"{u} = tensor.extract_slice {y}[0, {inter}] [{size}, {inter}] [1, 1] : {yt} to {half}",
        f"{init} = tensor.empty({rows or ''}) : {half}",
    ]
    body: list[str] = []
    v = _silu_mul(body, names, "%in0", "%in1", yt.elem)
    ident = dims(0, 1)
    lines.append(
        generic(
            out, 2, [(g, half, ident), (u, half, ident)], [(init, half, ident)], "pp", body, [v]
        )
    )
    return out, half


def _indent(lines: list[str], by: int) -> list[str]:
    """`lines` (entries may hold several lines) indented by `by` spaces, one line each."""
    return [" " * by + line for line in "\n".join(lines).splitlines()]


# Experts with at least ROW_BLOCK_MIN rows (prefill) run blocks of ROW_BLOCK static rows, so
# the schedule's register tiles and L2 column blocks reuse each weight tile across the rows
# (tiled by 1, a dynamic row count streams the expert's weights once per row). Blocks may run
# into the segment's zero padding (moe.dispatch pads segments to its block size), never past
# it; rows left over go one by one, as do experts with fewer rows (decode: 1 row each).
ROW_BLOCK, ROW_BLOCK_MIN = 16, 8


def _grouped(
    names, x, xt, w, wt, off, ot, out_elem, rows_fn, extra_slices=None, epilogue=None
) -> list[str]:
    """The expert loop shared by `moe.grouped_matmul` and `fp8.grouped_matmul`: per expert,
    its row segment of x (and of `extra_slices`) less trailing zero rows (block padding), in
    static row blocks then single rows (`ROW_BLOCK`): `rows_fn`, then `epilogue` (e.g.
    `swiglu_rows`), inserted in place. ``extra_slices(lines, lo, rows, row_type)`` slices
    per-row operands (fp8 scales) and returns `rows_fn`'s extra keyword arguments."""
    p, kdim = xt.shape
    e_count, n = wt.shape[0], wt.shape[1]
    n_out = n if epilogue is None else n // 2
    out_t = TT((p, n_out), out_elem)
    lines: list[str] = []
    init = filled(lines, names, out_t, "0.000000e+00" if out_elem != "i64" else "0")
    w_e_t = wt.like(wt.shape[1:])

    def segment(acc: str, lo: str, rows: str | None, count: int | None) -> list[str]:
        """Lines computing rows [lo, lo + count or rows) of the expert into `acc`; the last
        line defines %gx_seg (the updated accumulator)."""
        x_t = TT((count, kdim), xt.elem)
        size = rows if rows is not None else str(count)
        xs, we = names("xs"), names("we")
        inner = [
            f"{xs} = tensor.extract_slice {x}[{lo}, 0] [{size}, {kdim}] [1, 1] : {xt} to {x_t}",
            f"{we} = tensor.extract_slice {w}[%e, 0, 0] [1, {n}, {kdim}] [1, 1, 1] : {wt} "
            f"to {w_e_t}",
        ]
        extra = extra_slices(inner, lo, rows, count) if extra_slices else {}
        y, yt = rows_fn(inner, names, xs, x_t, we, w_e_t, out_elem, rows=rows, **extra)
        if epilogue is not None:
            y, yt = epilogue(inner, names, y, yt, rows)
        inner.append(
            f"%gx_seg = tensor.insert_slice {y} into {acc}[{lo}, 0] [{size}, {n_out}] [1, 1] "
            f": {yt} into {out_t}"
        )
        return inner

    lines += [
        "%c0 = arith.constant 0 : index",
        "%c1 = arith.constant 1 : index",
        f"%ce = arith.constant {e_count} : index",
        f"%cp = arith.constant {p} : index",
        f"%gx_rb = arith.constant {ROW_BLOCK} : index",
        f"%gx_rbm = arith.constant {ROW_BLOCK - 1} : index",
        f"%gx_rbmin = arith.constant {ROW_BLOCK_MIN} : index",
        f"%res = scf.for %e = %c0 to %ce step %c1 iter_args(%acc = {init}) -> ({out_t}) {{",
        "  %e1 = arith.addi %e, %c1 : index",
        f"  %lo0 = tensor.extract {off}[%e] : {ot}",
        f"  %hi0 = tensor.extract {off}[%e1] : {ot}",
        f"  %lo1 = arith.index_cast %lo0 : {ot.elem} to index",
        f"  %hi1 = arith.index_cast %hi0 : {ot.elem} to index",
        "  %lo = arith.minsi %lo1, %cp : index",
        "  %hi2 = arith.minsi %hi1, %cp : index",
        "  %hi = arith.maxsi %hi2, %lo : index",
        "  %len0 = arith.subi %hi, %lo : index",
        *_trim_zero_rows(x, xt, "%lo", "%len0", "%len"),
        # row blocks: ceil(len / RB) of them while they stay inside the padded segment
        "  %gx_blocked = arith.cmpi sge, %len, %gx_rbmin : index",
        "  %gx_up0 = arith.addi %len, %gx_rbm : index",
        "  %gx_up1 = arith.divui %gx_up0, %gx_rb : index",
        "  %gx_up = arith.muli %gx_up1, %gx_rb : index",
        "  %gx_eff = arith.minsi %gx_up, %len0 : index",
        "  %gx_nb0 = arith.divui %gx_eff, %gx_rb : index",
        "  %gx_nb = arith.select %gx_blocked, %gx_nb0, %c0 : index",
        "  %gx_done = arith.muli %gx_nb, %gx_rb : index",
        "  %gx_rest0 = arith.subi %gx_eff, %gx_done : index",
        "  %gx_rest = arith.select %gx_blocked, %gx_rest0, %len : index",
        f"  %gx_blk = scf.for %gx_ib = %c0 to %gx_nb step %c1 iter_args(%gx_bacc = %acc) "
        f"-> ({out_t}) {{",
        "    %gx_boff = arith.muli %gx_ib, %gx_rb : index",
        "    %gx_blo = arith.addi %lo, %gx_boff : index",
        *_indent(segment("%gx_bacc", "%gx_blo", None, ROW_BLOCK), 4),
        f"    scf.yield %gx_seg : {out_t}",
        "  }",
        "  %gx_rlo = arith.addi %lo, %gx_done : index",
        "  %some = arith.cmpi sgt, %gx_rest, %c0 : index",
        f"  %next = scf.if %some -> ({out_t}) {{",
        *_indent(segment("%gx_blk", "%gx_rlo", "%gx_rest", None), 4),
        f"    scf.yield %gx_seg : {out_t}",
        "  } else {",
        f"    scf.yield %gx_blk : {out_t}",
        "  }",
        f"  scf.yield %next : {out_t}",
        "}",
        f"return %res : {out_t}",
    ]
    return lines


@lowering("moe.dispatch")
def dispatch(k: Kernel) -> list[str]:
    """Counting sort of the (token, k) pairs by expert into block-padded segments."""
    x, xt = k.arg("x"), k.type("x")
    idx, it = k.arg("indices"), k.type("indices")
    e_count, bs = int(k.attrs["num_experts"]), int(k.attrs["block_size"])
    n, top = it.shape
    d = xt.shape[1]
    xs_t, rows_t, off_t = k.results
    ie = it.elem
    cnt_t = TT((e_count,), "i64")
    row_t = TT((1, d), xt.elem)
    lines: list[str] = []
    xs0 = filled(lines, k.names, xs_t, "0.000000e+00" if xt.elem != "i64" else "0")
    cnt0 = filled(lines, k.names, cnt_t, "0")
    off0 = filled(lines, k.names, off_t, "0")
    rows0 = filled(lines, k.names, rows_t, "0")
    lines += [
        "%c0 = arith.constant 0 : index",
        "%c1 = arith.constant 1 : index",
        f"%cn = arith.constant {n} : index",
        f"%ck = arith.constant {top} : index",
        f"%ce = arith.constant {e_count} : index",
        "%one = arith.constant 1 : i64",
        f"%bsm1 = arith.constant {bs - 1} : i64",
        f"%bs = arith.constant {bs} : i64",
        f"%nexp = arith.constant {e_count} : i64",
        "%zero = arith.constant 0 : i64",
        # counts[e] = number of pairs routed to e
        f"%counts = scf.for %n = %c0 to %cn step %c1 iter_args(%ca = {cnt0}) -> ({cnt_t}) {{",
        f"  %cb = scf.for %k = %c0 to %ck step %c1 iter_args(%cc = %ca) -> ({cnt_t}) {{",
        f"    %e0 = tensor.extract {idx}[%n, %k] : {it}",
        *_expert_index("    ", ie),
        f"    %cn2 = scf.if %valid -> ({cnt_t}) {{",
        f"      %old = tensor.extract %cc[%ei] : {cnt_t}",
        "      %new = arith.addi %old, %one : i64",
        f"      %ins = tensor.insert %new into %cc[%ei] : {cnt_t}",
        f"      scf.yield %ins : {cnt_t}",
        "    } else {",
        f"      scf.yield %cc : {cnt_t}",
        "    }",
        f"    scf.yield %cn2 : {cnt_t}",
        "  }",
        f"  scf.yield %cb : {cnt_t}",
        "}",
        # offsets[e+1] = offsets[e] + round_up(counts[e], bs); cursor[e] = offsets[e]
        f"%oc:2 = scf.for %e = %c0 to %ce step %c1 iter_args(%oa = {off0}, %cur = {cnt0}) "
        f"-> ({off_t}, {cnt_t}) {{",
        f"  %start = tensor.extract %oa[%e] : {off_t}",
        f"  %cnt = tensor.extract %counts[%e] : {cnt_t}",
        "  %up0 = arith.addi %cnt, %bsm1 : i64",
        "  %up1 = arith.divui %up0, %bs : i64",
        "  %up = arith.muli %up1, %bs : i64",
        "  %end = arith.addi %start, %up : i64",
        "  %e1 = arith.addi %e, %c1 : index",
        f"  %oa2 = tensor.insert %end into %oa[%e1] : {off_t}",
        f"  %cur2 = tensor.insert %start into %cur[%e] : {cnt_t}",
        f"  scf.yield %oa2, %cur2 : {off_t}, {cnt_t}",
        "}",
        # place every pair at its expert's cursor
        f"%pl:3 = scf.for %n = %c0 to %cn step %c1 iter_args(%xa = {xs0}, %ra = {rows0}, "
        f"%ua = %oc#1) -> ({xs_t}, {rows_t}, {cnt_t}) {{",
        f"  %xrow = tensor.extract_slice {x}[%n, 0] [1, {d}] [1, 1] : {xt} to {row_t}",
        f"  %pk:3 = scf.for %k = %c0 to %ck step %c1 iter_args(%xb = %xa, %rb = %ra, %ub = %ua) "
        f"-> ({xs_t}, {rows_t}, {cnt_t}) {{",
        f"    %e0 = tensor.extract {idx}[%n, %k] : {it}",
        *_expert_index("    ", ie),
        f"    %r:3 = scf.if %valid -> ({xs_t}, {rows_t}, {cnt_t}) {{",
        f"      %row = tensor.extract %ub[%ei] : {cnt_t}",
        "      %row1 = arith.addi %row, %one : i64",
        f"      %ub2 = tensor.insert %row1 into %ub[%ei] : {cnt_t}",
        f"      %rb2 = tensor.insert %row into %rb[%n, %k] : {rows_t}",
        "      %ri = arith.index_cast %row : i64 to index",
        f"      %xb2 = tensor.insert_slice %xrow into %xb[%ri, 0] [1, {d}] [1, 1] "
        f": {row_t} into {xs_t}",
        f"      scf.yield %xb2, %rb2, %ub2 : {xs_t}, {rows_t}, {cnt_t}",
        "    } else {",
        f"      scf.yield %xb, %rb, %ub : {xs_t}, {rows_t}, {cnt_t}",
        "    }",
        f"    scf.yield %r#0, %r#1, %r#2 : {xs_t}, {rows_t}, {cnt_t}",
        "  }",
        f"  scf.yield %pk#0, %pk#1, %pk#2 : {xs_t}, {rows_t}, {cnt_t}",
        "}",
        f"return %pl#0, %pl#1, %oc#0 : {xs_t}, {rows_t}, {off_t}",
    ]
    return lines


def _expert_index(indent: str, elem: str) -> list[str]:
    """Body lines: ``%e0`` (an expert id of type `elem`) -> ``%ei`` (index), ``%valid``."""
    widen = [] if elem == "i64" else [f"%e64 = arith.extsi %e0 : {elem} to i64"]
    ev = "%e0" if elem == "i64" else "%e64"
    return [
        indent + line
        for line in [
            *widen,
            f"%ge0 = arith.cmpi sge, {ev}, %zero : i64",
            f"%ltn = arith.cmpi slt, {ev}, %nexp : i64",
            "%valid = arith.andi %ge0, %ltn : i1",
            f"%ei = arith.index_cast {ev} : i64 to index",
        ]
    ]


@lowering("moe.router")
def router(k: Kernel) -> list[str]:
    """Scores (sigmoid or softmax of ``x · W^T``), selection on ``scores + bias`` restricted to
    the best `topk_group` groups, weights = selected scores (normalized) * route_scale."""
    names = k.names
    x, xt = k.arg("x"), k.type("x")
    w, wt = k.arg("weight"), k.type("weight")
    n, e_count = xt.shape[0], wt.shape[0]
    top_k, groups = int(k.attrs["top_k"]), int(k.attrs["n_groups"])
    topk_group = int(k.attrs["topk_group"])
    if groups > 64:
        raise LoweringError(f"n_groups = {groups} > 64 is not supported")
    lines: list[str] = []
    logits, lt = einsum(lines, names, "nd,ed->ne", x, xt, w, wt)
    scores = _scores(lines, names, logits, lt, k.attrs["score_func"])
    choice = scores
    if k.has("bias"):
        bt = k.type("bias")
        out = empty(lines, names, lt)
        body: list[str] = []
        bf = to_f32(body, names, "%in1", bt.elem)
        body.append(f"%c = arith.addf %in0, {bf} : f32")
        lines.append(
            generic(
                "%choice",
                2,
                [(scores, lt, dims(0, 1)), (k.arg("bias"), bt, dims(1))],
                [(out, lt, dims(0, 1))],
                "pp",
                body,
                ["%c"],
            )
        )
        choice = "%choice"
    wo_t, io_t = k.results
    lines += _selection(
        names, scores, choice, lt, wo_t, io_t, n, e_count, top_k, groups, topk_group, k.attrs
    )
    return lines


def _scores(lines: list[str], names: Names, logits: str, lt: TT, func: str) -> str:
    ident = dims(0, 1)
    out = empty(lines, names, lt)
    if func == "sigmoid":
        body = [
            "%ng = arith.negf %in0 : f32",
            "%e = math.exp %ng : f32",
            "%one = arith.constant 1.000000e+00 : f32",
            "%d = arith.addf %one, %e : f32",
            "%s = arith.divf %one, %d : f32",
        ]
        lines.append(
            generic("%scores", 2, [(logits, lt, ident)], [(out, lt, ident)], "pp", body, ["%s"])
        )
        return "%scores"
    if func != "softmax":
        raise LoweringError(f"unknown score_func '{func}'")
    rows_t = lt.like((lt.shape[0],))
    mx0 = filled(lines, names, rows_t, "0xFF800000")
    lines.append(
        generic(
            "%smax",
            2,
            [(logits, lt, ident)],
            [(mx0, rows_t, dims(0))],
            "pr",
            ["%m = arith.maximumf %out0, %in0 : f32"],
            ["%m"],
        )
    )
    ex0 = empty(lines, names, lt)
    lines.append(
        generic(
            "%sexp",
            2,
            [(logits, lt, ident), ("%smax", rows_t, dims(0))],
            [(ex0, lt, ident)],
            "pp",
            ["%d = arith.subf %in0, %in1 : f32", "%e = math.exp %d : f32"],
            ["%e"],
        )
    )
    s0 = filled(lines, names, rows_t, "0.000000e+00")
    lines.append(
        generic(
            "%ssum",
            2,
            [("%sexp", lt, ident)],
            [(s0, rows_t, dims(0))],
            "pr",
            ["%a = arith.addf %out0, %in0 : f32"],
            ["%a"],
        )
    )
    lines.append(
        generic(
            "%scores",
            2,
            [("%sexp", lt, ident), ("%ssum", rows_t, dims(0))],
            [(out, lt, ident)],
            "pp",
            ["%q = arith.divf %in0, %in1 : f32"],
            ["%q"],
        )
    )
    return "%scores"


def _selection(
    names, scores, choice, lt, wo_t, io_t, n, e_count, top_k, groups, topk_group, attrs
) -> list[str]:
    """The per-token selection loop nest (see `router`)."""
    gs = e_count // groups
    top2 = attrs["group_score"] == "top2_sum"
    scale = float(attrs["route_scale"])
    norm = bool(attrs["norm_topk_prob"])
    wo0, io0 = names("wo"), names("io")
    out = [
        f"{wo0} = tensor.empty() : {wo_t}",
        f"{io0} = tensor.empty() : {io_t}",
        "%c0 = arith.constant 0 : index",
        "%c1 = arith.constant 1 : index",
        f"%cn = arith.constant {n} : index",
        f"%ce = arith.constant {e_count} : index",
        f"%ckt = arith.constant {top_k} : index",
        f"%cg = arith.constant {groups} : index",
        f"%ctg = arith.constant {topk_group} : index",
        f"%cgs = arith.constant {gs} : index",
        "%ninf = arith.constant 0xFF800000 : f32",
        "%pinf = arith.constant 0x7F800000 : f32",
        "%fz = arith.constant 0.000000e+00 : f32",
        "%m1 = arith.constant -1 : index",
        "%i0 = arith.constant 0 : i64",
        "%i1 = arith.constant 1 : i64",
        "%allg = arith.constant -1 : i64",
        f"%eps = arith.constant {f32(1e-20)} : f32",
        f"%rscale = arith.constant {f32(scale)} : f32",
        f"%tok:2 = scf.for %n = %c0 to %cn step %c1 iter_args(%wa = {wo0}, %ia = {io0}) "
        f"-> ({wo_t}, {io_t}) {{",
    ]
    if groups > 1:
        out += [
            # keep the topk_group groups with the best group scores (bit g of %gmask)
            "  %gmask = scf.for %kg = %c0 to %ctg step %c1 iter_args(%mask = %i0) -> (i64) {",
            "    %bg:2 = scf.for %g = %c0 to %cg step %c1 iter_args(%bv = %ninf, %bi = %m1) "
            "-> (f32, index) {",
            "      %g0 = arith.muli %g, %cgs : index",
            "      %gsc:2 = scf.for %j = %c0 to %cgs step %c1 iter_args(%t1 = %ninf, %t2 = %ninf) "
            "-> (f32, f32) {",
            "        %ej = arith.addi %g0, %j : index",
            f"        %v = tensor.extract {choice}[%n, %ej] : {lt}",
            "        %gt1 = arith.cmpf ogt, %v, %t1 : f32",
            "        %gt2 = arith.cmpf ogt, %v, %t2 : f32",
            "        %t2a = arith.select %gt2, %v, %t2 : f32",
            "        %n2 = arith.select %gt1, %t1, %t2a : f32",
            "        %n1 = arith.select %gt1, %v, %t1 : f32",
            "        scf.yield %n1, %n2 : f32, f32",
            "      }",
            (
                "      %gscore = arith.addf %gsc#0, %gsc#1 : f32"
                if top2
                else "      %gscore = arith.addf %gsc#0, %fz : f32"
            ),
            "      %gi = arith.index_cast %g : index to i64",
            "      %sh = arith.shrui %mask, %gi : i64",
            "      %bit = arith.andi %sh, %i1 : i64",
            "      %free = arith.cmpi eq, %bit, %i0 : i64",
            "      %first = arith.cmpi eq, %bi, %m1 : index",
            "      %gtb = arith.cmpf ogt, %gscore, %bv : f32",
            "      %better0 = arith.ori %gtb, %first : i1",
            "      %better = arith.andi %better0, %free : i1",
            "      %nv = arith.select %better, %gscore, %bv : f32",
            "      %ni = arith.select %better, %g, %bi : index",
            "      scf.yield %nv, %ni : f32, index",
            "    }",
            "    %bgi = arith.index_cast %bg#1 : index to i64",
            "    %one_sh = arith.shli %i1, %bgi : i64",
            "    %mask2 = arith.ori %mask, %one_sh : i64",
            "    scf.yield %mask2 : i64",
            "  }",
        ]
    else:
        out.append("  %gmask = arith.addi %allg, %i0 : i64")
    out += [
        # top_k experts in descending (value, then ascending index) order
        f"  %sel:5 = scf.for %kk = %c0 to %ckt step %c1 iter_args(%pv = %pinf, %pi = %m1, "
        f"%wb = %wa, %ib = %ia, %tot = %fz) -> (f32, index, {wo_t}, {io_t}, f32) {{",
        "    %best:2 = scf.for %e = %c0 to %ce step %c1 iter_args(%bv = %ninf, %bi = %m1) "
        "-> (f32, index) {",
        f"      %v = tensor.extract {choice}[%n, %e] : {lt}",
        "      %g = arith.divui %e, %cgs : index",
        "      %gi = arith.index_cast %g : index to i64",
        "      %sh = arith.shrui %gmask, %gi : i64",
        "      %bit = arith.andi %sh, %i1 : i64",
        "      %ing = arith.cmpi ne, %bit, %i0 : i64",
        "      %lt = arith.cmpf olt, %v, %pv : f32",
        "      %eq = arith.cmpf oeq, %v, %pv : f32",
        "      %after = arith.cmpi sgt, %e, %pi : index",
        "      %tie = arith.andi %eq, %after : i1",
        "      %below = arith.ori %lt, %tie : i1",
        "      %elig = arith.andi %ing, %below : i1",
        "      %first = arith.cmpi eq, %bi, %m1 : index",
        "      %gtb = arith.cmpf ogt, %v, %bv : f32",
        "      %better0 = arith.ori %gtb, %first : i1",
        "      %better = arith.andi %better0, %elig : i1",
        "      %nv = arith.select %better, %v, %bv : f32",
        "      %ni = arith.select %better, %e, %bi : index",
        "      scf.yield %nv, %ni : f32, index",
        "    }",
        "    %bidx = arith.maxsi %best#1, %c0 : index",
        f"    %sv = tensor.extract {scores}[%n, %bidx] : {lt}",
        "    %bi64 = arith.index_cast %best#1 : index to i64",
        f"    %wb2 = tensor.insert %sv into %wb[%n, %kk] : {wo_t}",
        f"    %ib2 = tensor.insert %bi64 into %ib[%n, %kk] : {io_t}",
        "    %tot2 = arith.addf %tot, %sv : f32",
        f"    scf.yield %best#0, %best#1, %wb2, %ib2, %tot2 : f32, index, {wo_t}, {io_t}, f32",
        "  }",
    ]
    if norm:
        out.append("  %den = arith.addf %sel#4, %eps : f32")
    out += [
        f"  %fin = scf.for %kk = %c0 to %ckt step %c1 iter_args(%wc = %sel#2) -> ({wo_t}) {{",
        f"    %w0 = tensor.extract %wc[%n, %kk] : {wo_t}",
        "    %w1 = arith.divf %w0, %den : f32" if norm else "    %w1 = arith.addf %w0, %fz : f32",
        "    %w2 = arith.mulf %w1, %rscale : f32",
        f"    %wc2 = tensor.insert %w2 into %wc[%n, %kk] : {wo_t}",
        f"    scf.yield %wc2 : {wo_t}",
        "  }",
        f"  scf.yield %fin, %sel#3 : {wo_t}, {io_t}",
        "}",
        f"return %tok#0, %tok#1 : {wo_t}, {io_t}",
    ]
    return out
