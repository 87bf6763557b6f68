"""torch ops the llvm target lowers itself: ``torch.aten.linear`` as a transposed-B matmul on
the weight as stored (torch-mlir's lowering transposes the weight on every call)."""

from __future__ import annotations

from ..emit import dims, empty, from_f32, generic, to_f32
from . import Kernel, lowering
from ._common import linear


@lowering("torch.aten.linear")
def aten_linear(k: Kernel) -> list[str]:
    """``y = x · W^T (+ b)`` with fp32 accumulation, in x's dtype."""
    lines: list[str] = []
    x, xt = k.arg("input"), k.type("input")
    y, yt = linear(lines, k.names, x, xt, k.arg("weight"), k.type("weight"))
    if k.has("bias"):
        bt = k.type("bias")
        out = empty(lines, k.names, yt)
        body: list[str] = []
        a = to_f32(body, k.names, "%in0", yt.elem)
        b = to_f32(body, k.names, "%in1", bt.elem)
        body.append(f"%yb = arith.addf {a}, {b} : f32")
        r = from_f32(body, k.names, "%yb", yt.elem)
        ident = dims(*range(yt.rank))
        lines.append(
            generic(
                "%biased",
                yt.rank,
                [(y, yt, ident), (k.arg("bias"), bt, dims(yt.rank - 1))],
                [(out, yt, ident)],
                "p" * yt.rank,
                body,
                [r],
            )
        )
        y = "%biased"
    lines.append(f"return {y} : {yt}")
    return lines
