"""FP8 (float8_e4m3fn, block scales): `fp8.quantize`, `fp8.dequantize`, `fp8.matmul`,
`fp8.grouped_matmul`.

x86 has no fp8 arithmetic and LLVM cannot convert f8 values: conversions are integer code
(`emit.e4m3_to_f32` / `emit.f32_to_e4m3`), storage stays one byte per element. Matmuls follow
DeepGEMM: per K block, the fp32 sum of products of the raw fp8 values, times
``x_scale * w_scale``, added to an fp32 accumulator.
"""

from __future__ import annotations

from ..emit import (
    FP8_CONSTANTS,
    TT,
    LoweringError,
    Names,
    dims,
    einsum,
    empty,
    f32,
    filled,
    from_f32,
    generic,
    to_f32,
)
from . import Kernel, fused_lowering, lowering
from ._common import collapse_2d, convert, expand_from_2d
from .moe import _grouped, swiglu_rows

E4M3_MAX = 448.0


def _block_index(body: list[str], src: str, block: int, out: str) -> None:
    """``out = src floordiv block`` on indices."""
    body += [
        f"{out}_b = arith.constant {block} : index",
        f"{out} = arith.divui {src}, {out}_b : index",
    ]


@lowering("fp8.quantize")
def quantize(k: Kernel) -> list[str]:
    """Per block: ``scale = amax/448`` (pow2-rounded, 1 if all zero), ``q = e4m3(x/scale)``."""
    x, xt = k.arg("x"), k.type("x")
    blocks = [int(b) for b in k.attrs["block_shape"]]
    if len(blocks) > 2:
        raise LoweringError(f"block_shape {blocks}: at most 2 blocked dims")
    q_t, s_t = k.results
    r, nb = xt.rank, len(blocks)
    lead = r - nb
    lines = FP8_CONSTANTS.splitlines()
    names = k.names
    # amax per block: a loop nest over the block's elements inside a generic over the scales
    body = [f"%s{i} = linalg.index {i} : index" for i in range(r)]
    loops, idx = [], [f"%s{i}" for i in range(lead)]
    for j, b in enumerate(blocks):
        d = lead + j
        size = xt.shape[d]
        body += [
            f"%bb{j} = arith.constant {b} : index",
            f"%lo{j} = arith.muli %s{d}, %bb{j} : index",
            f"%hi0{j} = arith.addi %lo{j}, %bb{j} : index",
            f"%dim{j} = arith.constant {size} : index",
            f"%hi{j} = arith.minsi %hi0{j}, %dim{j} : index",
        ]
        loops.append(j)
        idx.append(f"%j{j}")
    body += ["%one_i = arith.constant 1 : index"]
    acc = "%out0"
    nest: list[str] = []
    for j in loops:
        nest.append(
            f"%m{j} = scf.for %j{j} = %lo{j} to %hi{j} step %one_i iter_args(%a{j} = "
            f"{acc if j == 0 else '%a' + str(j - 1)}) -> (f32) {{"
        )
    inner_acc = f"%a{loops[-1]}"
    inner = [f"%xv = tensor.extract {x}[{', '.join(idx)}] : {xt}"]
    xf = to_f32(inner, names, "%xv", xt.elem)
    inner += [
        f"%ab = math.absf {xf} : f32",
        f"%mx = arith.maximumf {inner_acc}, %ab : f32",
        "scf.yield %mx : f32",
    ]
    closing = []
    for j in reversed(loops[:-1]):
        closing += ["}", f"scf.yield %m{j + 1} : f32"]
    body += nest + inner + closing + ["}"]
    amax_t = s_t
    init = filled(lines, names, amax_t, "0.000000e+00")
    lines.append(generic("%amax", r, [], [(init, amax_t, dims(*range(r)))], "p" * r, body, ["%m0"]))
    # scale
    pow2 = bool(k.attrs["pow2_scale"])
    body = [f"%fmax = arith.constant {f32(E4M3_MAX)} : f32", "%sc0 = arith.divf %in0, %fmax : f32"]
    if pow2:
        body += [
            "%bits = arith.bitcast %sc0 : f32 to i32",
            "%mant_m = arith.constant 8388607 : i32",
            "%exp_m = arith.constant 2139095040 : i32",
            "%unit = arith.constant 8388608 : i32",
            "%mant = arith.andi %bits, %mant_m : i32",
            "%zi = arith.constant 0 : i32",
            "%exact = arith.cmpi eq, %mant, %zi : i32",
            "%ex = arith.andi %bits, %exp_m : i32",
            "%up = arith.addi %ex, %unit : i32",
            "%pb = arith.select %exact, %bits, %up : i32",
            "%sc1 = arith.bitcast %pb : i32 to f32",
        ]
    else:
        body.append("%sc1 = arith.addf %sc0, %zf : f32")
        body.insert(0, "%zf = arith.constant -0.000000e+00 : f32")
    body += [
        "%z = arith.constant 0.000000e+00 : f32",
        "%onef = arith.constant 1.000000e+00 : f32",
        "%pos = arith.cmpf ogt, %in0, %z : f32",
        "%sc = arith.select %pos, %sc1, %onef : f32",
    ]
    s0 = empty(lines, names, s_t)
    ident_s = dims(*range(s_t.rank))
    lines.append(
        generic(
            "%scale",
            s_t.rank,
            [("%amax", amax_t, ident_s)],
            [(s0, s_t, ident_s)],
            "p" * s_t.rank,
            body,
            ["%sc"],
        )
    )
    # q = e4m3(clamp(x / scale))
    body = [f"%q{i} = linalg.index {i} : index" for i in range(r)]
    sidx = [f"%q{i}" for i in range(lead)]
    for j, b in enumerate(blocks):
        _block_index(body, f"%q{lead + j}", b, f"%qb{j}")
        sidx.append(f"%qb{j}")
    body.append(f"%sv = tensor.extract %scale[{', '.join(sidx)}] : {s_t}")
    xf = to_f32(body, names, "%in0", xt.elem)
    body += [
        f"%dv = arith.divf {xf}, %sv : f32",
        f"%hi = arith.constant {f32(E4M3_MAX)} : f32",
        f"%lo = arith.constant {f32(-E4M3_MAX)} : f32",
        "%c1v = arith.minimumf %dv, %hi : f32",
        "%c2v = arith.maximumf %c1v, %lo : f32",
    ]
    qv = from_f32(body, names, "%c2v", "f8E4M3FN")
    q0 = empty(lines, names, q_t)
    ident = dims(*range(r))
    lines.append(generic("%q", r, [(x, xt, ident)], [(q0, q_t, ident)], "p" * r, body, [qv]))
    lines.append(f"return %q, %scale : {q_t}, {s_t}")
    return lines


@lowering("fp8.dequantize")
def dequantize(k: Kernel) -> list[str]:
    """``out = float(q) * scale`` of each element's block, in ``out_dtype``."""
    q, qt = k.arg("q"), k.type("q")
    s, st = k.arg("scale"), k.type("scale")
    blocks = [int(b) for b in k.attrs["block_shape"]]
    (out_t,) = k.results
    r, lead = qt.rank, qt.rank - len(blocks)
    lines = FP8_CONSTANTS.splitlines()
    body = [f"%q{i} = linalg.index {i} : index" for i in range(r)]
    sidx = [f"%q{i}" for i in range(lead)]
    for j, b in enumerate(blocks):
        _block_index(body, f"%q{lead + j}", b, f"%qb{j}")
        sidx.append(f"%qb{j}")
    body.append(f"%sv = tensor.extract {s}[{', '.join(sidx)}] : {st}")
    v = to_f32(body, k.names, "%in0", qt.elem)
    body.append(f"%y = arith.mulf {v}, %sv : f32")
    y = from_f32(body, k.names, "%y", out_t.elem)
    o = empty(lines, k.names, out_t)
    ident = dims(*range(r))
    lines.append(generic("%r", r, [(q, qt, ident)], [(o, out_t, ident)], "p" * r, body, [y]))
    lines.append(f"return %r : {out_t}")
    return lines


def _scaled_rows(
    lines: list[str],
    names: Names,
    x: str,
    xt: TT,
    w: str,
    wt: TT,
    out_elem: str,
    *,
    xs: str,
    xst: TT,
    ws: str,
    wst: TT,
    block_n: int,
    block_k: int,
    rows: str | None = None,
) -> tuple[str, TT]:
    """``x [M, K] (f8) · w [N, K]^T (f8)`` block-scaled; M may be dynamic (`rows`)."""
    m, kdim = xt.shape
    n = wt.shape[0]
    kb = -(-kdim // block_k)
    acc_t = TT((m, n), "f32")
    part_t = TT((m, n), "f32")
    # K blocks of one static size (K a multiple of the block, as in DeepSeek's shapes) make the
    # per-block product a static contraction that the schedule tiles and vectorizes
    static_k = kdim % block_k == 0
    klen = str(block_k) if static_k else "%klen"
    xk_t = TT((m, block_k if static_k else None), xt.elem)
    wk_t = TT((n, block_k if static_k else None), wt.elem)
    dyn = "" if rows is None else rows
    lines += [
        f"%sr_accz = tensor.empty({dyn}) : {acc_t}",
        "%fz = arith.constant 0.000000e+00 : f32",
        f"%sr_acc0 = linalg.fill ins(%fz : f32) outs(%sr_accz : {acc_t}) -> {acc_t}",
        "%k0 = arith.constant 0 : index",
        "%k1 = arith.constant 1 : index",
        f"%kbs = arith.constant {kb} : index",
        f"%bk = arith.constant {block_k} : index",
        f"%kdim = arith.constant {kdim} : index",
        f"%sr_kacc = scf.for %kb = %k0 to %kbs step %k1 iter_args(%sr_acc = %sr_acc0) "
        f"-> ({acc_t}) {{",
        "  %klo = arith.muli %kb, %bk : index",
        "  %khi0 = arith.addi %klo, %bk : index",
        "  %khi = arith.minsi %khi0, %kdim : index",
        "  %klen = arith.subi %khi, %klo : index",
    ]
    m_size = "%rows_m" if rows is not None else str(m)
    if rows is not None:
        lines.append(f"  %rows_m = arith.addi {rows}, %k0 : index")
    lines += [
        f"  %xk = tensor.extract_slice {x}[0, %klo] [{m_size}, {klen}] [1, 1] : {xt} to {xk_t}",
        f"  %wk = tensor.extract_slice {w}[0, %klo] [{n}, {klen}] [1, 1] : {wt} to {wk_t}",
        f"  %pz = tensor.empty({dyn}) : {part_t}",
        f"  %p0 = linalg.fill ins(%fz : f32) outs(%pz : {part_t}) -> {part_t}",
    ]
    inner: list[str] = []
    part, _ = einsum(inner, names, "mk,nk->mn", "%xk", xk_t, "%wk", wk_t, "f32", init="%p0")
    lines += [f"  {line}" for line in "\n".join(inner).splitlines()]
    body = [
        "%n = linalg.index 1 : index",
        f"%nbk = arith.constant {block_n} : index",
        "%nb = arith.divui %n, %nbk : index",
        f"%wsv = tensor.extract {ws}[%nb, %kb] : {wst}",
        f"%xsv = tensor.extract {xs}[%m_i, %kb] : {xst}",
        "%sc = arith.mulf %xsv, %wsv : f32",
        "%pv = arith.mulf %in0, %sc : f32",
        "%nv = arith.addf %out0, %pv : f32",
    ]
    body.insert(0, "%m_i = linalg.index 0 : index")
    upd = generic(
        "%sr_acc2",
        2,
        [(part, part_t, dims(0, 1))],
        [("%sr_acc", acc_t, dims(0, 1))],
        "pp",
        body,
        ["%nv"],
    )
    lines += [f"  {line}" for line in upd.splitlines()]
    lines += [f"  scf.yield %sr_acc2 : {acc_t}", "}"]
    if out_elem == "f32":
        return "%sr_kacc", acc_t
    if rows is None:
        return convert(lines, names, "%sr_kacc", acc_t, out_elem)
    out_t = acc_t.like(elem=out_elem)
    body = []
    v = from_f32(body, names, "%in0", out_elem)
    lines.append(f"%cv_e = tensor.empty({rows}) : {out_t}")
    lines.append(
        generic(
            "%ycv",
            2,
            [("%sr_kacc", acc_t, dims(0, 1))],
            [("%cv_e", out_t, dims(0, 1))],
            "pp",
            body,
            [v],
        )
    )
    return "%ycv", out_t


_ELEM = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


@lowering("fp8.matmul")
def matmul(k: Kernel) -> list[str]:
    """``y = x · w^T`` from block-scaled fp8 operands (see the module docstring)."""
    names = k.names
    lines = FP8_CONSTANTS.splitlines()
    xt = k.type("x_q")
    x2, x2t = collapse_2d(lines, names, k.arg("x_q"), xt)
    xs2, xs2t = collapse_2d(lines, names, k.arg("x_scale"), k.type("x_scale"))
    out_elem = _ELEM.get(k.attrs["out_dtype"])
    if out_elem is None:
        raise LoweringError(f"out_dtype {k.attrs['out_dtype']}")
    y, yt = _scaled_rows(
        lines,
        names,
        x2,
        x2t,
        k.arg("w_q"),
        k.type("w_q"),
        out_elem,
        xs=xs2,
        xst=xs2t,
        ws=k.arg("w_scale"),
        wst=k.type("w_scale"),
        block_n=int(k.attrs["block_n"]),
        block_k=int(k.attrs["block_k"]),
    )
    (out_t,) = k.results
    out = expand_from_2d(lines, names, y, yt, out_t.shape)
    lines.append(f"return {out} : {out_t}")
    return lines


@lowering("fp8.grouped_matmul")
def grouped_matmul(k: Kernel) -> list[str]:
    """`fp8.matmul` of each expert's rows ``[offsets[e], offsets[e+1])`` with its weight."""
    return _grouped_fp8(k)


@fused_lowering("fp8.grouped_matmul", "moe.swiglu")
def grouped_matmul_swiglu(k: Kernel) -> list[str]:
    """`moe.swiglu` of `fp8.grouped_matmul`, per expert on its rows only."""
    return _grouped_fp8(k, swiglu_rows)


def _grouped_fp8(k: Kernel, epilogue=None) -> list[str]:
    """The fp8 expert loop, optionally with an `epilogue` on each expert's rows."""
    names = k.names
    xt, wt = k.type("x_q"), k.type("w_q")
    xst, wst = k.type("x_scale"), k.type("w_scale")
    out_elem = _ELEM.get(k.attrs["out_dtype"])
    if out_elem is None:
        raise LoweringError(f"out_dtype {k.attrs['out_dtype']}")
    kb = xst.shape[1]
    ws_e_t = TT(tuple(wst.shape[1:]), "f32")

    def slices(inner: list[str], lo: str, rows: str | None, count: int | None) -> dict:
        """The rows' activation scales and the expert's weight scales."""
        xs_e_t = TT((count, kb), "f32")
        xse, wse = names("xse"), names("wse")
        inner += [
            f"{xse} = tensor.extract_slice {k.arg('x_scale')}[{lo}, 0] "
            f"[{rows or count}, {kb}] [1, 1] : {xst} to {xs_e_t}",
            f"{wse} = tensor.extract_slice {k.arg('w_scale')}[%e, 0, 0] [1, {wst.shape[1]}, "
            f"{wst.shape[2]}] [1, 1, 1] : {wst} to {ws_e_t}",
        ]
        return {
            "xs": xse,
            "xst": xs_e_t,
            "ws": wse,
            "wst": ws_e_t,
            "block_n": int(k.attrs["block_n"]),
            "block_k": int(k.attrs["block_k"]),
        }

    body = _grouped(
        names,
        k.arg("x_q"),
        xt,
        k.arg("w_q"),
        wt,
        k.arg("expert_offsets"),
        k.type("expert_offsets"),
        out_elem,
        _scaled_rows,
        slices,
        epilogue,
    )
    return FP8_CONSTANTS.splitlines() + body
