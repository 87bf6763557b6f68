"""Tensor types at the graph level: `!torch.vtensor<[dims],dtype>` and builtin `tensor<...>`.

The mla/moe/fp8 ops accept both spellings. `TensorInfo` is the one view of either that
verifiers, builders and lowerings read: a shape (``None`` for a dynamic dim) and a dtype
named like torch names it (``"float32"``, ``"int64"``, ``"float8_e4m3fn"``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ._mlir import ir

# torch dtype name <-> element type spelling inside !torch.vtensor (torch-mlir's convention:
# signed integers are `si64`, signless `i1` is bool) and inside builtin tensors.
_DTYPES: tuple[tuple[str, str, str], ...] = (
    # (torch name, vtensor spelling, builtin spelling)
    ("float32", "f32", "f32"),
    ("float16", "f16", "f16"),
    ("bfloat16", "bf16", "bf16"),
    ("float64", "f64", "f64"),
    ("float8_e4m3fn", "f8E4M3FN", "f8E4M3FN"),
    ("float8_e5m2", "f8E5M2", "f8E5M2"),
    ("int64", "si64", "i64"),
    ("int32", "si32", "i32"),
    ("int16", "si16", "i16"),
    ("int8", "si8", "i8"),
    ("uint8", "ui8", "ui8"),
    ("bool", "i1", "i1"),
)
_FROM_VTENSOR = {v: t for t, v, _ in _DTYPES}
_FROM_BUILTIN = {b: t for t, _, b in _DTYPES}
_TO_VTENSOR = {t: v for t, v, _ in _DTYPES}

FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})
FP8_DTYPES = frozenset({"float8_e4m3fn", "float8_e5m2"})
INT_DTYPES = frozenset({"int64", "int32"})

_VTENSOR_RE = re.compile(r"^!torch\.vtensor<\[([^\]]*)\],([A-Za-z0-9_]+)>$")


@dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype of a ranked tensor value; ``None`` marks a dynamic dimension."""

    shape: tuple[int | None, ...]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"[{dims}]x{self.dtype}"


def tensor_info(t: ir.Type) -> TensorInfo | None:
    """Returns the shape and dtype of a ranked tensor type, or None for anything else."""
    return _tensor_info(t)


# Verification and lowering ask for the same few types ~10^5 times in a full-size model. A
# cached type keeps its context alive, so a key is never a dead context's reused pointer.
@functools.lru_cache(maxsize=4096)
def _tensor_info(t: ir.Type) -> TensorInfo | None:
    if isinstance(t, ir.RankedTensorType):
        dynamic = ir.ShapedType.get_dynamic_size()
        shape = tuple(None if d == dynamic else d for d in t.shape)
        dtype = _FROM_BUILTIN.get(str(t.element_type))
        return None if dtype is None else TensorInfo(shape, dtype)
    m = _VTENSOR_RE.match(str(t))
    if not m:
        return None
    dtype = _FROM_VTENSOR.get(m.group(2))
    if dtype is None:
        return None
    dims = m.group(1).strip()
    shape = () if not dims else tuple(None if d == "?" else int(d) for d in dims.split(","))
    return TensorInfo(shape, dtype)


def vtensor_type(shape: tuple[int | None, ...] | list[int | None], dtype: str) -> ir.Type:
    """Builds `!torch.vtensor<[shape],dtype>` in the current context."""
    dims = ",".join("?" if d is None else str(d) for d in shape)
    return ir.Type.parse(f"!torch.vtensor<[{dims}],{_TO_VTENSOR[dtype]}>")


def like(t: ir.Type, info: TensorInfo) -> ir.Type:
    """Builds a type of the same kind as `t` (vtensor or builtin) with `info`'s shape and dtype."""
    if isinstance(t, ir.RankedTensorType):
        elem = ir.Type.parse(_builtin_spelling(info.dtype))
        shape = [ir.ShapedType.get_dynamic_size() if d is None else d for d in info.shape]
        return ir.RankedTensorType.get(shape, elem)
    return vtensor_type(info.shape, info.dtype)


def _builtin_spelling(dtype: str) -> str:
    for torch_name, _, builtin in _DTYPES:
        if torch_name == dtype:
            return builtin
    raise KeyError(dtype)
