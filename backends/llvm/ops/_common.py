"""Building blocks the op lowerings share: reshapes, fp32 contractions, casts."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..emit import TT, Names, dims, filled, from_f32, generic, to_f32
from . import _bf16_dot as bf16_dot


def collapse_2d(lines: list[str], names: Names, value: str, t: TT) -> tuple[str, TT]:
    """Views ``[..., K]`` as ``[prod(...), K]`` (no-op for rank 2)."""
    if t.rank == 2:
        return value, t
    out_t = t.like((math.prod(t.shape[:-1]), t.shape[-1]))
    groups = "[" + ", ".join(str(i) for i in range(t.rank - 1)) + f"], [{t.rank - 1}]"
    if t.rank == 1:
        out_t = t.like((1, t.shape[0]))
        out = names("x2")
        lines.append(
            f"{out} = tensor.expand_shape {value} [[0, 1]] output_shape [1, "
            f"{t.shape[0]}] : {t} into {out_t}"
        )
        return out, out_t
    out = names("x2")
    lines.append(f"{out} = tensor.collapse_shape {value} [{groups}] : {t} into {out_t}")
    return out, out_t


def expand_from_2d(lines: list[str], names: Names, value: str, t: TT, shape: Sequence[int]) -> str:
    """Views a ``[M, N]`` tensor as `shape` (whose leading dims multiply to M)."""
    shape = tuple(shape)
    if len(shape) == 2:
        return value
    out_t = t.like(shape)
    out = names("xn")
    if len(shape) == 1:
        lines.append(f"{out} = tensor.collapse_shape {value} [[0, 1]] : {t} into {out_t}")
        return out
    groups = "[" + ", ".join(str(i) for i in range(len(shape) - 1)) + f"], [{len(shape) - 1}]"
    lines.append(
        f"{out} = tensor.expand_shape {value} [{groups}] output_shape "
        f"[{', '.join(map(str, shape))}] : {t} into {out_t}"
    )
    return out


def convert(lines: list[str], names: Names, value: str, t: TT, elem: str) -> tuple[str, TT]:
    """Elementwise cast of tensor `value` to `elem` (fp32 in between); no-op if equal."""
    if t.elem == elem:
        return value, t
    out_t = t.like(elem=elem)
    init = names("cvt_init")
    lines.append(f"{init} = tensor.empty() : {out_t}")
    body: list[str] = []
    x = to_f32(body, names, "%in0", t.elem)
    y = from_f32(body, names, x, elem)
    ident = dims(*range(t.rank))
    res = names("cvt")
    lines.append(
        generic(res, t.rank, [(value, t, ident)], [(init, out_t, ident)], "p" * t.rank, body, [y])
    )
    return res, out_t


def matmul_nt(
    lines: list[str], names: Names, x: str, xt: TT, w: str, wt: TT, out_elem: str
) -> tuple[str, TT]:
    """``x [M, K] · w [N, K]^T`` accumulated in fp32, cast to `out_elem`."""
    if out_elem == "bf16" and bf16_dot.available(xt, wt):
        return bf16_dot.matmul_bf16(lines, names, x, xt, w, wt)
    m = xt.shape[0]
    n = wt.shape[0]
    acc_t = TT((m, n), "f32")
    init = filled(lines, names, acc_t, "0.000000e+00")
    body: list[str] = []
    a = to_f32(body, names, "%in0", xt.elem)
    b = to_f32(body, names, "%in1", wt.elem)
    p, s = names("prod"), names("sum")
    body += [
        f"{p} = arith.mulf {a}, {b} fastmath<contract> : f32",
        f"{s} = arith.addf %out0, {p} fastmath<contract> : f32",
    ]
    res = names("mm")
    lines.append(
        generic(
            res,
            3,
            [(x, xt, dims(0, 2)), (w, wt, dims(1, 2))],
            [(init, acc_t, dims(0, 1))],
            "ppr",
            body,
            [s],
        )
    )
    return convert(lines, names, res, acc_t, out_elem)


def linear(lines: list[str], names: Names, x: str, xt: TT, w: str, wt: TT) -> tuple[str, TT]:
    """``x [..., K] · w [N, K]^T`` in fp32, in x's dtype and shape ``[..., N]``."""
    x2, x2t = collapse_2d(lines, names, x, xt)
    y, yt = matmul_nt(lines, names, x2, x2t, w, wt, xt.elem)
    shape = (*xt.shape[:-1], wt.shape[0])
    return expand_from_2d(lines, names, y, yt, shape), xt.like(shape)
