"""Rotary embedding: `mla.rotary_embedding` (angles from YaRN frequencies computed at compile
time) and `mla.rope_tables`; `rotate` also serves the ops that rotate by precomputed tables.

Per channel ``d`` with pair index ``i`` and partner ``d'`` (``d ^ 1`` interleaved, ``d +- dr/2``
rotate-half): ``out[d] = x[d] cos_i -+ x[d'] sin_i`` (minus for the pair's first channel).
"""

from __future__ import annotations

from typing import Any

from ..emit import TT, LoweringError, Names, dims, empty, f32, from_f32, generic, to_f32
from . import Kernel, lowering


def inv_freq_constant(rope: dict[str, Any], dim: int) -> str:
    """The fp32 YaRN-corrected inverse frequencies as a dense tensor literal."""
    from mlacc.runtime.semantics.rope import inv_freq  # torch, at compile time only

    values = ", ".join(f32(float(v)) for v in inv_freq(rope, dim))
    return f"dense<[{values}]> : tensor<{dim // 2}xf32>"


def rotate(
    lines: list[str],
    names: Names,
    x: str,
    xt: TT,
    positions: str,
    pt: TT,
    layout: str,
    *,
    rope: dict[str, Any] | None = None,
    tables: tuple[str, str, TT] | None = None,
) -> str:
    """Rotates x ``[B,S,H,d]``/``[B,S,d]`` by ``positions [B,S]``; angles from `rope`'s
    frequencies or rows of `tables` (cos, sin, type ``[P, d/2]``). Returns x's type."""
    if layout not in ("interleaved", "rotate_half"):
        raise LoweringError(f"unknown rope layout '{layout}'")
    r, d = xt.rank, xt.shape[-1]
    half = d // 2
    for n in sorted({1, 2, half}):
        line = f"%c{n} = arith.constant {n} : index"
        if line not in lines:
            lines.append(line)
    if rope is not None:
        freq = names("invf")
        lines.append(f"{freq} = arith.constant {inv_freq_constant(rope, d)}")
        scale = float(rope["cos_sin_scale"])
    out = empty(lines, names, xt)
    body = [f"%i{k} = linalg.index {k} : index" for k in range(r)]
    last = f"%i{r - 1}"
    if layout == "interleaved":
        body += [
            f"%pair = arith.divui {last}, %c2 : index",
            f"%odd = arith.remui {last}, %c2 : index",
            "%first = arith.cmpi ult, %odd, %c1 : index",
            f"%pidx_i = arith.index_cast {last} : index to i64",
            "%pone = arith.constant 1 : i64",
            "%pidx_x = arith.xori %pidx_i, %pone : i64",
            "%partner = arith.index_cast %pidx_x : i64 to index",
        ]
    else:
        body += [
            f"%first = arith.cmpi ult, {last}, %c{half} : index",
            f"%lo = arith.subi {last}, %c{half} : index",
            f"%hi = arith.addi {last}, %c{half} : index",
            f"%pair = arith.select %first, {last}, %lo : index",
            "%partner = arith.select %first, %hi, %lo : index",
        ]
    idx = ", ".join(f"%i{k}" for k in range(r - 1))
    body.append(f"%xp = tensor.extract {x}[{idx}, %partner] : {xt}")
    if rope is not None:
        body += [
            f"%pf = arith.sitofp %in1 : {pt.elem} to f32",
            f"%fq = tensor.extract {freq}[%pair] : tensor<{half}xf32>",
            "%ang = arith.mulf %pf, %fq : f32",
            "%cos0 = math.cos %ang : f32",
            "%sin0 = math.sin %ang : f32",
            f"%sc = arith.constant {f32(scale)} : f32",
            "%cos = arith.mulf %cos0, %sc : f32",
            "%sin = arith.mulf %sin0, %sc : f32",
        ]
    else:
        cos, sin, tt = tables
        rows = tt.shape[0]
        body += [
            f"%prow = arith.index_cast %in1 : {pt.elem} to index",
            "%pz = arith.constant 0 : index",
            f"%pmax = arith.constant {rows - 1} : index",
            "%prow1 = arith.maxsi %prow, %pz : index",
            "%prow2 = arith.minsi %prow1, %pmax : index",
            f"%cos = tensor.extract {cos}[%prow2, %pair] : {tt}",
            f"%sin = tensor.extract {sin}[%prow2, %pair] : {tt}",
        ]
    xf = to_f32(body, names, "%in0", xt.elem)
    xpf = to_f32(body, names, "%xp", xt.elem)
    body += [
        f"%ta = arith.mulf {xf}, %cos : f32",
        f"%tb = arith.mulf {xpf}, %sin : f32",
        "%diff = arith.subf %ta, %tb : f32",
        "%sum = arith.addf %ta, %tb : f32",
        "%rot = arith.select %first, %diff, %sum : f32",
    ]
    y = from_f32(body, names, "%rot", xt.elem)
    res = names("rot")
    lines.append(
        generic(
            res,
            r,
            [(x, xt, dims(*range(r))), (positions, pt, dims(0, 1))],
            [(out, xt, dims(*range(r)))],
            "p" * r,
            body,
            [y],
        )
    )
    return res


@lowering("mla.rotary_embedding")
def rotary_embedding(k: Kernel) -> list[str]:
    """Rotation by ``positions`` with angles ``position * inv_freq`` (YaRN) computed here."""
    rope = k.attrs["rope"]
    lines: list[str] = []
    out = rotate(
        lines,
        k.names,
        k.arg("x"),
        k.type("x"),
        k.arg("positions"),
        k.type("positions"),
        rope["layout"],
        rope=rope,
    )
    lines.append(f"return {out} : {k.type('x')}")
    return lines


@lowering("mla.rope_tables")
def rope_tables(k: Kernel) -> list[str]:
    """``cos/sin[p, i] = cos/sin(p * inv_freq[i]) * cos_sin_scale`` (fp32)."""
    rope, dim = k.attrs["rope"], int(k.attrs["dim"])
    t = k.results[0]
    lines = [f"%invf = arith.constant {inv_freq_constant(rope, dim)}"]
    scale = float(rope["cos_sin_scale"])
    outs = [empty(lines, k.names, t), empty(lines, k.names, t)]
    body = [
        "%p = linalg.index 0 : index",
        "%pi = arith.index_cast %p : index to i64",
        "%pf = arith.sitofp %pi : i64 to f32",
        "%ang = arith.mulf %pf, %in0 : f32",
        "%c0 = math.cos %ang : f32",
        "%s0 = math.sin %ang : f32",
        f"%sc = arith.constant {f32(scale)} : f32",
        "%c = arith.mulf %c0, %sc : f32",
        "%s = arith.mulf %s0, %sc : f32",
    ]
    inv_t = TT((dim // 2,), "f32")
    lines.append(
        generic(
            "%r:2",
            2,
            [("%invf", inv_t, dims(1))],
            [(outs[0], t, dims(0, 1)), (outs[1], t, dims(0, 1))],
            "pp",
            body,
            ["%c", "%s"],
        )
    )
    lines.append(f"return %r#0, %r#1 : {t}, {t}")
    return lines
