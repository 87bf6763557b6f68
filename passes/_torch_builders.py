"""Builders for the few torch-dialect ops passes emit, with result types computed here.

Each takes and returns `ir.Value`s and builds at the current insertion point and location.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..dialects._mlir import ir, torch_dialect
from ..dialects.types import TensorInfo, tensor_info, vtensor_type


def info(value: ir.Value) -> TensorInfo:
    """Shape and dtype of a tensor value."""
    result = tensor_info(value.type)
    if result is None:
        raise TypeError(f"expected a ranked tensor, got {value.type}")
    return result


def const_int(value: int) -> ir.Value:
    return torch_dialect.ConstantIntOp(value).result


def int_list(values: Sequence[int | ir.Value]) -> ir.Value:
    """A ``!torch.list<int>`` of constants (ints) and computed sizes (Values)."""
    items = [v if isinstance(v, ir.Value) else const_int(v) for v in values]
    return torch_dialect.PrimListConstructOp(ir.Type.parse("!torch.list<int>"), items).result


def none() -> ir.Value:
    return torch_dialect.ConstantNoneOp().result


def linear(x: ir.Value, weight: ir.Value) -> ir.Value:
    """``x @ weight^T`` (``nn.Linear`` without bias)."""
    xi, wi = info(x), info(weight)
    out = vtensor_type((*xi.shape[:-1], wi.shape[0]), xi.dtype)
    return torch_dialect.AtenLinearOp(out, x, weight, none()).result


def view(x: ir.Value, shape: Sequence[int]) -> ir.Value:
    """``x.reshape(shape)`` (value semantics: a view where the layout allows, else a copy)."""
    out = vtensor_type(tuple(shape), info(x).dtype)
    return torch_dialect.AtenReshapeOp(out, x, int_list(shape)).result


def narrow(x: ir.Value, dim: int, start: int, length: int) -> ir.Value:
    """``x[..., start:start+length, ...]`` along `dim`."""
    xi = info(x)
    dim = dim % xi.rank
    shape = list(xi.shape)
    shape[dim] = length
    out = vtensor_type(tuple(shape), xi.dtype)
    return torch_dialect.AtenSliceTensorOp(
        out, x, const_int(dim), const_int(start), const_int(start + length), const_int(1)
    ).result


def cat(values: Sequence[ir.Value], dim: int) -> ir.Value:
    """``torch.cat(values, dim)`` (a dynamic size along `dim` stays dynamic)."""
    infos = [info(v) for v in values]
    dim = dim % infos[0].rank
    shape = list(infos[0].shape)
    sizes = [i.shape[dim] for i in infos]
    shape[dim] = None if None in sizes else sum(sizes)
    out = vtensor_type(tuple(shape), infos[0].dtype)
    items = torch_dialect.PrimListConstructOp(
        ir.Type.parse("!torch.list<vtensor>"), list(values)
    ).result
    return torch_dialect.AtenCatOp(out, items, const_int(dim)).result


def positions(batch: int, length: int) -> ir.Value:
    """``arange(length)`` expanded to ``[batch, length]`` (int64)."""
    nothing = none()
    cpu = torch_dialect.ConstantDeviceOp("cpu").result
    false = torch_dialect.ConstantBoolOp(False).result
    ramp = torch_dialect.AtenArangeOp(
        vtensor_type((length,), "int64"), const_int(length), nothing, nothing, cpu, false
    ).result
    return torch_dialect.AtenExpandOp(
        vtensor_type((batch, length), "int64"), ramp, int_list([batch, length]), false
    ).result


# The largest value of each integer dtype positions come in.
_INT_MAX = {"int64": 2**63 - 1, "int32": 2**31 - 1, "int16": 2**15 - 1, "int8": 127, "uint8": 255}


def mask_positions(positions: ir.Value, key_mask: ir.Value) -> ir.Value:
    """``torch.where(key_mask, positions, <dtype max>)``: masked keys sit after every query."""
    t = info(positions)
    big = const_int(_INT_MAX[t.dtype])
    return torch_dialect.AtenWhereScalarOtherOp(
        vtensor_type(t.shape, t.dtype), key_mask, positions, big
    ).result


def einsum(equation: str, operands: Sequence[ir.Value], shape: Sequence[int]) -> ir.Value:
    """``torch.einsum(equation, *operands)`` with result `shape` (dtype of the first operand)."""
    out = vtensor_type(tuple(shape), info(operands[0]).dtype)
    items = torch_dialect.PrimListConstructOp(
        ir.Type.parse("!torch.list<vtensor>"), list(operands)
    ).result
    return torch_dialect.AtenEinsumOp(
        out, torch_dialect.ConstantStrOp(equation).result, items, none()
    ).result


def silu(x: ir.Value) -> ir.Value:
    """``F.silu(x)``."""
    return torch_dialect.AtenSiluOp(x.type, x).result


def mul(a: ir.Value, b: ir.Value) -> ir.Value:
    """``a * b`` (same shapes)."""
    return torch_dialect.AtenMulTensorOp(a.type, a, b).result


def size(x: ir.Value, dim: int) -> ir.Value:
    """``x.size(dim)`` as a ``!torch.int``."""
    return torch_dialect.AtenSizeIntOp(x, const_int(dim)).result


def permute(x: ir.Value, dims: Sequence[int]) -> ir.Value:
    """``x.permute(dims)``."""
    xi = info(x)
    out = vtensor_type(tuple(xi.shape[d] for d in dims), xi.dtype)
    return torch_dialect.AtenPermuteOp(out, x, int_list(dims)).result


def new_full(like: ir.Value, fill: int | float, columns: int = 1) -> ir.Value:
    """``like.new_full([N, columns], fill)``: like's dtype and device, N = like's rows."""
    li = info(like)
    rows = li.shape[0]
    if isinstance(fill, float):
        value = torch_dialect.ConstantFloatOp(ir.FloatAttr.get(ir.F64Type.get(), fill)).result
    else:
        value = const_int(fill)
    dims = int_list([rows if rows is not None else size(like, 0), columns])
    return torch_dialect.AtenNewFullOp(
        vtensor_type((rows, columns), li.dtype), like, dims, value, none(), none(), none(), none()
    ).result


def erase_if_unused(value: ir.Value) -> None:
    """Erases the torch constant defining `value` once nothing uses it."""
    owner = value.owner
    if isinstance(owner, ir.OpView | ir.Operation) and not list(value.uses):
        op = owner.operation
        if op.name.startswith("torch.constant.") and len(op.results) == 1:
            op.erase()
