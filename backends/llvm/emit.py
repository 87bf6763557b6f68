"""Text builders for the kernels the `llvm` target's lowerings emit.

Each op lowering (`mlacc.backends.llvm.ops.*`) writes one private ``func.func`` in MLIR text:
linalg/tensor/arith/math/scf on builtin tensors. These helpers spell types, constants,
element conversions and ``linalg.generic`` ops so that the lowerings read like the math.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...dialects.types import TensorInfo

# torch dtype name -> builtin element type
ELEMENT = {
    "float32": "f32",
    "float16": "f16",
    "bfloat16": "bf16",
    "float64": "f64",
    "float8_e4m3fn": "f8E4M3FN",
    "int64": "i64",
    "int32": "i32",
    "int8": "i8",
    "bool": "i1",
}
FLOATS = ("f16", "bf16", "f32", "f64")
_WIDTH = {"f16": 16, "bf16": 16, "f32": 32, "f64": 64}


class LoweringError(Exception):
    """An op (or an operand form) the `llvm` target cannot lower."""


@dataclass(frozen=True)
class TT:
    """A static builtin tensor type: shape and element type (``f32``, ``i64``, ...)."""

    shape: tuple[int | None, ...]  # None: dynamic
    elem: str

    @staticmethod
    def of(info: TensorInfo) -> TT:
        """The builtin tensor type of a graph-level tensor (static shapes only)."""
        if any(d is None for d in info.shape):
            raise LoweringError(f"dynamic shape {info} (the llvm target needs static shapes)")
        if info.dtype not in ELEMENT:
            raise LoweringError(f"element type {info.dtype} is not supported")
        return TT(tuple(int(d) for d in info.shape), ELEMENT[info.dtype])

    @property
    def rank(self) -> int:
        return len(self.shape)

    def like(self, shape: Sequence[int] | None = None, elem: str | None = None) -> TT:
        """This type with another shape and/or element type."""
        return TT(tuple(self.shape if shape is None else shape), elem or self.elem)

    def __str__(self) -> str:
        dims = "".join("?x" if d is None else f"{d}x" for d in self.shape)
        return f"tensor<{dims}{self.elem}>"


def f32(value: float) -> str:
    """An f32 literal that parses back to the nearest f32 of `value`."""
    if math.isinf(value):
        return "0xFF800000" if value < 0 else "0x7F800000"
    return f"{value:.9e}"


def f64(value: float) -> str:
    """An f64 literal that parses back to exactly `value`."""
    return f"{value:.17e}"


class Names:
    """Fresh SSA names: ``%v0``, ``%v1``, ..."""

    def __init__(self) -> None:
        self._ids = itertools.count()

    def __call__(self, stem: str = "v") -> str:
        return f"%{stem}{next(self._ids)}"


def to_f32(lines: list[str], names: Names, value: str, elem: str) -> str:
    """Appends the conversion of scalar `value` of type `elem` to f32; returns the f32 name."""
    if elem == "f32":
        return value
    out = names("ext")
    if elem in ("f16", "bf16"):
        lines.append(f"{out} = arith.extf {value} : {elem} to f32")
    elif elem == "f64":
        lines.append(f"{out} = arith.truncf {value} : f64 to f32")
    elif elem == "f8E4M3FN":
        return e4m3_to_f32(lines, names, value)
    else:
        raise LoweringError(f"cannot convert {elem} to f32")
    return out


def from_f32(lines: list[str], names: Names, value: str, elem: str) -> str:
    """Appends the conversion of f32 scalar `value` to `elem` (round to nearest even)."""
    if elem == "f32":
        return value
    out = names("trunc")
    if elem in ("f16", "bf16"):
        lines.append(f"{out} = arith.truncf {value} : f32 to {elem}")
    elif elem == "f64":
        lines.append(f"{out} = arith.extf {value} : f32 to f64")
    elif elem == "f8E4M3FN":
        return f32_to_e4m3(lines, names, value)
    else:
        raise LoweringError(f"cannot convert f32 to {elem}")
    return out


def e4m3_to_f32(lines: list[str], names: Names, value: str) -> str:
    """f8E4M3FN -> f32 in integer arithmetic (LLVM has no f8 type; exact for all 256 codes).

    Normal codes: sign | (exp + 120) << 23 | mant << 20. Subnormals (exp = 0): mant * 2^-9.
    NaN (0x7F/0xFF) -> NaN.
    """
    n = names("f8")
    lines += [
        f"{n}b = arith.bitcast {value} : f8E4M3FN to i8",
        f"{n}u = arith.extui {n}b : i8 to i32",
        f"{n}s = arith.andi {n}u, %c_i32_128 : i32",
        f"{n}sh = arith.shli {n}s, %c_i32_24 : i32",
        f"{n}e = arith.shrui {n}u, %c_i32_3 : i32",
        f"{n}e4 = arith.andi {n}e, %c_i32_15 : i32",
        f"{n}m = arith.andi {n}u, %c_i32_7 : i32",
        f"{n}eb = arith.addi {n}e4, %c_i32_120 : i32",
        f"{n}ebs = arith.shli {n}eb, %c_i32_23 : i32",
        f"{n}ms = arith.shli {n}m, %c_i32_20 : i32",
        f"{n}nb = arith.ori {n}ebs, {n}ms : i32",
        f"{n}nb2 = arith.ori {n}nb, {n}sh : i32",
        f"{n}norm = arith.bitcast {n}nb2 : i32 to f32",
        f"{n}mf = arith.uitofp {n}m : i32 to f32",
        f"{n}sub0 = arith.mulf {n}mf, %c_f32_2m9 : f32",
        f"{n}sub1 = arith.negf {n}sub0 : f32",
        f"{n}neg = arith.cmpi ne, {n}s, %c_i32_0 : i32",
        f"{n}sub = arith.select {n}neg, {n}sub1, {n}sub0 : f32",
        f"{n}isub = arith.cmpi eq, {n}e4, %c_i32_0 : i32",
        f"{n}v = arith.select {n}isub, {n}sub, {n}norm : f32",
        f"{n}low = arith.andi {n}u, %c_i32_127 : i32",
        f"{n}isnan = arith.cmpi eq, {n}low, %c_i32_127 : i32",
        f"{n}r = arith.select {n}isnan, %c_f32_nan, {n}v : f32",
    ]
    return f"{n}r"


def f32_to_e4m3(lines: list[str], names: Names, value: str) -> str:
    """f32 -> f8E4M3FN, round to nearest even, saturating to +-448 (inputs are pre-clamped).

    Works on |x| scaled so that e4m3's smallest subnormal step (2^-9) is an integer ulp:
    for |x| < 2^-6 (subnormal) the code is round(|x| * 2^9); otherwise the f32 bits are
    rounded to 3 mantissa bits and re-biased (exponent 127 -> 7).
    """
    n = names("q")
    lines += [
        f"{n}bits = arith.bitcast {value} : f32 to i32",
        f"{n}sgn = arith.shrui {n}bits, %c_i32_24 : i32",
        f"{n}sg = arith.andi {n}sgn, %c_i32_128 : i32",
        f"{n}a = math.absf {value} : f32",
        # subnormal path: round-half-even of a * 2^9
        f"{n}sc = arith.mulf {n}a, %c_f32_2p9 : f32",
        f"{n}rs = math.roundeven {n}sc : f32",
        f"{n}sub = arith.fptoui {n}rs : f32 to i32",
        # normal path: round the 23-bit mantissa to 3 bits (half-even), re-bias
        f"{n}ab = arith.bitcast {n}a : f32 to i32",
        f"{n}lsb0 = arith.shrui {n}ab, %c_i32_20 : i32",
        f"{n}lsb = arith.andi {n}lsb0, %c_i32_1 : i32",
        f"{n}bias = arith.addi {n}lsb, %c_i32_0x7ffff : i32",
        f"{n}rb = arith.addi {n}ab, {n}bias : i32",
        f"{n}tr = arith.shrui {n}rb, %c_i32_20 : i32",
        f"{n}nrm = arith.subi {n}tr, %c_i32_960 : i32",
        f"{n}issub = arith.cmpf olt, {n}a, %c_f32_2m6 : f32",
        f"{n}mag0 = arith.select {n}issub, {n}sub, {n}nrm : i32",
        f"{n}mag = arith.minui {n}mag0, %c_i32_126 : i32",
        f"{n}isnan = arith.cmpf uno, {value}, {value} : f32",
        f"{n}mag2 = arith.select {n}isnan, %c_i32_127, {n}mag : i32",
        f"{n}code = arith.ori {n}mag2, {n}sg : i32",
        f"{n}c8 = arith.trunci {n}code : i32 to i8",
        f"{n}r = arith.bitcast {n}c8 : i8 to f8E4M3FN",
    ]
    return f"{n}r"


# Constants the fp8 conversions use (defined once at the top of a kernel that needs them).
FP8_CONSTANTS = "\n".join(
    [
        "%c_i32_0 = arith.constant 0 : i32",
        "%c_i32_1 = arith.constant 1 : i32",
        "%c_i32_3 = arith.constant 3 : i32",
        "%c_i32_7 = arith.constant 7 : i32",
        "%c_i32_15 = arith.constant 15 : i32",
        "%c_i32_20 = arith.constant 20 : i32",
        "%c_i32_23 = arith.constant 23 : i32",
        "%c_i32_24 = arith.constant 24 : i32",
        "%c_i32_120 = arith.constant 120 : i32",
        "%c_i32_126 = arith.constant 126 : i32",
        "%c_i32_127 = arith.constant 127 : i32",
        "%c_i32_128 = arith.constant 128 : i32",
        "%c_i32_960 = arith.constant 960 : i32",
        "%c_i32_0x7ffff = arith.constant 524287 : i32",
        f"%c_f32_2m9 = arith.constant {f32(2.0**-9)} : f32",
        f"%c_f32_2p9 = arith.constant {f32(2.0**9)} : f32",
        f"%c_f32_2m6 = arith.constant {f32(2.0**-6)} : f32",
        "%c_f32_nan = arith.constant 0x7FC00000 : f32",
    ]
)


def affine(dims: int, exprs: str) -> str:
    """``affine_map<(d0, ..., d{dims-1}) -> (exprs)>``."""
    ds = ", ".join(f"d{i}" for i in range(dims))
    return f"affine_map<({ds}) -> ({exprs})>"


def dims(*indices: int) -> str:
    """``d{i}, d{j}, ...`` for an indexing map."""
    return ", ".join(f"d{i}" for i in indices)


def generic(
    result: str,
    ndims: int,
    ins: Sequence[tuple[str, TT, str]],
    outs: Sequence[tuple[str, TT, str]],
    iterators: str,
    body: Sequence[str],
    yields: Sequence[str],
) -> str:
    """A ``linalg.generic``: ``ins``/``outs`` are (value, type, map exprs); the body's block
    arguments are ``%in0, %in1, ...`` then ``%out0, ...``; ``iterators`` spells one letter per
    loop (``p`` parallel, ``r`` reduction)."""
    maps = ", ".join(affine(ndims, m) for _, _, m in (*ins, *outs))
    its = ", ".join('"parallel"' if c == "p" else '"reduction"' for c in iterators)
    args = [f"%in{i}: {t.elem}" for i, (_, t, _) in enumerate(ins)]
    args += [f"%out{i}: {t.elem}" for i, (_, t, _) in enumerate(outs)]
    in_vals = ", ".join(v for v, _, _ in ins)
    in_types = ", ".join(str(t) for _, t, _ in ins)
    out_vals = ", ".join(v for v, _, _ in outs)
    out_types = ", ".join(str(t) for _, t, _ in outs)
    ins_text = f" ins({in_vals} : {in_types})" if ins else ""
    yield_types = ", ".join(t.elem for _, t, _ in outs)
    lines = [
        f"{result} = linalg.generic {{indexing_maps = [{maps}], iterator_types = [{its}]}}"
        f"{ins_text} outs({out_vals} : {out_types}) {{",
        f"^bb0({', '.join(args)}):",
        *[f"  {line}" for line in body],
        f"  linalg.yield {', '.join(yields)} : {yield_types}",
        f"}} -> {out_types}",
    ]
    return "\n".join(lines)


def filled(lines: list[str], names: Names, t: TT, value: str) -> str:
    """Appends ``tensor.empty`` + ``linalg.fill`` of `t` with the scalar literal `value`."""
    e, c, f = names("empty"), names("cst"), names("init")
    lines += [
        f"{e} = tensor.empty() : {t}",
        f"{c} = arith.constant {value} : {t.elem}",
        f"{f} = linalg.fill ins({c} : {t.elem}) outs({e} : {t}) -> {t}",
    ]
    return f


def empty(lines: list[str], names: Names, t: TT) -> str:
    """Appends a ``tensor.empty`` of `t`."""
    e = names("empty")
    lines.append(f"{e} = tensor.empty() : {t}")
    return e


def zero(elem: str) -> str:
    """The literal zero of an element type."""
    return "0.000000e+00" if elem in FLOATS or elem.startswith("f8") else "0"


def neg_inf(elem: str) -> str:
    """-inf of a float element type, as a literal."""
    if elem != "f32":
        raise LoweringError(f"-inf literal only for f32, got {elem}")
    return "0xFF800000"


def einsum(
    lines: list[str],
    names: Names,
    spec: str,
    a: str,
    at: TT,
    b: str,
    bt: TT,
    out_elem: str = "f32",
    init: str | None = None,
    order: str | None = None,
) -> tuple[str, TT]:
    """A two-operand contraction ``"bshd,hdc->bshc"`` as one ``linalg.generic``, products
    and sums in fp32, the result cast to `out_elem`. Loops: output letters, then the summed
    ones, unless `order` spells them (e.g. ``"bshdc"``: a contraction the schedule leaves to
    LLVM then runs its innermost loop along contiguous memory). `init` (an f32 tensor of the
    output shape) replaces the zero accumulator."""
    ins, out = spec.split("->")
    sa, sb = ins.split(",")
    summed = [c for c in dict.fromkeys(sa + sb) if c not in out]
    if order is not None and sorted(order) != sorted([*out, *summed]):
        raise LoweringError(f"einsum loop order '{order}' does not match '{spec}'")
    order = list(order) if order is not None else list(out) + summed
    size: dict[str, int | None] = {}
    for letters, t in ((sa, at), (sb, bt)):
        for c, d in zip(letters, t.shape):
            if size.get(c) is None:
                size[c] = d
    out_t = TT(tuple(size[c] for c in out), "f32")
    if init is None:
        if any(d is None for d in out_t.shape):
            raise LoweringError("einsum with a dynamic output needs an explicit init")
        init = filled(lines, names, out_t, "0.000000e+00")
    body: list[str] = []
    x = to_f32(body, names, "%in0", at.elem)
    y = to_f32(body, names, "%in1", bt.elem)
    p, s = names("prod"), names("sum")
    body += [
        f"{p} = arith.mulf {x}, {y} fastmath<contract> : f32",
        f"{s} = arith.addf %out0, {p} fastmath<contract> : f32",
    ]
    res = names("ein")
    idx = {c: i for i, c in enumerate(order)}
    maps = [dims(*(idx[c] for c in letters)) for letters in (sa, sb, out)]
    lines.append(
        generic(
            res,
            len(order),
            [(a, at, maps[0]), (b, bt, maps[1])],
            [(init, out_t, maps[2])],
            "".join("r" if c in summed else "p" for c in order),
            body,
            [s],
        )
    )
    if out_elem == "f32":
        return res, out_t
    from .ops._common import convert

    return convert(lines, names, res, out_t, out_elem)


def extract_slice(
    lines: list[str], names: Names, value: str, t: TT, offsets: list[int], sizes: list[int]
) -> tuple[str, TT]:
    """A static ``tensor.extract_slice`` (unit strides, same rank)."""
    out_t = t.like(sizes)
    out = names("sl")
    lines.append(
        f"{out} = tensor.extract_slice {value}[{', '.join(map(str, offsets))}] "
        f"[{', '.join(map(str, sizes))}] [{', '.join('1' for _ in sizes)}] : {t} to {out_t}"
    )
    return out, out_t
