"""`mla.rms_norm`: two linalg.generic ops, a fp32 sum of squares and the scaling."""

from __future__ import annotations

from ..emit import dims, empty, f32, filled, from_f32, generic, to_f32
from . import Kernel, lowering


@lowering("mla.rms_norm")
def rms_norm(k: Kernel) -> list[str]:
    """``y = x * rsqrt(mean(x^2, -1) + eps) * weight`` (fp32 math, x's dtype)."""
    x, xt = k.arg("x"), k.type("x")
    w, wt = k.arg("weight"), k.type("weight")
    r = xt.rank
    lines: list[str] = []
    names = k.names
    lead_t = xt.like(xt.shape[:-1], "f32")
    acc = filled(lines, names, lead_t, "0.000000e+00")
    body: list[str] = []
    xf = to_f32(body, names, "%in0", xt.elem)
    body += ["%sq = arith.mulf " + f"{xf}, {xf} : f32", "%s = arith.addf %out0, %sq : f32"]
    lines.append(
        generic(
            "%ss",
            r,
            [(x, xt, dims(*range(r)))],
            [(acc, lead_t, dims(*range(r - 1)))],
            "p" * (r - 1) + "r",
            body,
            ["%s"],
        )
    )
    out = empty(lines, names, xt)
    lines += [
        f"%n = arith.constant {f32(float(xt.shape[-1]))} : f32",
        f"%eps = arith.constant {f32(float(k.attrs['eps']))} : f32",
    ]
    body = [
        "%mean = arith.divf %in1, %n : f32",
        "%v = arith.addf %mean, %eps : f32",
        "%rs = math.rsqrt %v : f32",
    ]
    xf = to_f32(body, names, "%in0", xt.elem)
    wf = to_f32(body, names, "%in2", wt.elem)
    body += [f"%nx = arith.mulf {xf}, %rs : f32", f"%y = arith.mulf %nx, {wf} : f32"]
    y = from_f32(body, names, "%y", xt.elem)
    lines.append(
        generic(
            "%r",
            r,
            [(x, xt, dims(*range(r))), ("%ss", lead_t, dims(*range(r - 1))), (w, wt, dims(r - 1))],
            [(out, xt, dims(*range(r)))],
            "p" * r,
            body,
            [y],
        )
    )
    lines.append(f"return %r : {xt}")
    return lines
