"""What every mlacc op shares: operand constraints, shape inference, verification, building.

An op class declares its fields the `torch_mlir.dialects.ext` way and one static method,
``infer(**operands, **attributes) -> list[TensorInfo]``, that checks shapes and dimensions and
returns the result types. The same function verifies parsed IR (MLIR's verifier calls
``verify_invariants``) and computes result types in builders, so the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._mlir import ext, ir
from .types import FLOAT_DTYPES, TensorInfo, like, tensor_info


class VTensor(ir.Type):
    """IRDL constraint for torch-mlir's value-semantics tensor type `!torch.vtensor`."""

    type_name = "torch.vtensor"


class DenseI64Array(ir.Attribute):
    """IRDL constraint for `array<i64: ...>` attributes."""

    attr_name = "builtin.dense_array"


class Flag(ir.Attribute):
    """IRDL constraint for boolean attributes (`true`/`false`, i.e. i1 integers)."""

    attr_name = "builtin.integer"


# Graph-level tensors: torch-mlir's `!torch.vtensor` or a builtin ranked `tensor`.
AnyTensor = VTensor | ir.RankedTensorType


class VerificationError(Exception):
    """A shape, dimension or attribute rule an op's verifier found broken."""


# --- checks used by `infer` functions; each raises VerificationError naming the mismatch ---


def expect_rank(t: TensorInfo, name: str, *ranks: int) -> None:
    """`t` has one of `ranks`."""
    if t.rank not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise VerificationError(f"{name} must have rank {want}, got rank {t.rank} ({t})")


def expect_dim(actual: int | None, expected: int | None, what: str) -> None:
    """A dimension equals the expected size (dynamic sizes match anything)."""
    if actual is not None and expected is not None and actual != expected:
        raise VerificationError(f"{what} is {actual}, expected {expected}")


def expect_dtype(t: TensorInfo, name: str, allowed: frozenset[str] | set[str]) -> None:
    """`t`'s element type is one of `allowed`."""
    if t.dtype not in allowed:
        raise VerificationError(
            f"{name} must have element type {' or '.join(sorted(allowed))}, got {t.dtype}"
        )


def expect_float(t: TensorInfo, name: str) -> None:
    """`t` has a floating-point element type (fp32, fp16, bf16, fp64)."""
    expect_dtype(t, name, FLOAT_DTYPES)


def expect_same_dtype(a: TensorInfo, a_name: str, b: TensorInfo, b_name: str) -> None:
    """`a` and `b` share an element type."""
    if a.dtype != b.dtype:
        raise VerificationError(
            f"{b_name} element type {b.dtype} differs from {a_name}'s {a.dtype}"
        )


def expect_static(t: TensorInfo, name: str) -> None:
    """`t` has no dynamic dimension (weights: their sizes define the op's dimensions)."""
    expect(None not in t.shape, f"{name} must have a static shape, got {t}")


def expect_matrix(t: TensorInfo | None, name: str, rows: int | None, cols: int | None) -> None:
    """`t` is a present float matrix of `rows` x `cols`, with static sizes."""
    expect(t is not None, f"'{name}' is required")
    assert t is not None
    expect_float(t, name)
    expect_rank(t, name, 2)
    expect_static(t, name)
    expect_dim(t.shape[0], rows, f"{name} rows")
    expect_dim(t.shape[1], cols, f"{name} columns")


def expect_vector(t: TensorInfo | None, name: str, size: int | None) -> None:
    """`t` is a present float vector of `size`, with a static size."""
    expect(t is not None, f"'{name}' is required")
    assert t is not None
    expect_float(t, name)
    expect_rank(t, name, 1)
    expect_static(t, name)
    expect_dim(t.shape[0], size, f"{name} size")


def expect(ok: bool, message: str) -> None:
    """A rule holds; otherwise `message` is the diagnostic."""
    if not ok:
        raise VerificationError(message)


def expect_bool(value: object, name: str) -> None:
    """A `Flag` attribute holds `true` or `false`."""
    expect(isinstance(value, bool), f"attribute '{name}' must be true or false, got {value!r}")


def expect_finite(attributes: dict[str, Any], prefix: str = "") -> None:
    """Every float in `attributes` (nested dictionaries and lists included) is finite."""
    for name, value in attributes.items():
        where = f"{prefix}{name}"
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, dict):
                expect_finite(v, f"{where}.")
            elif isinstance(v, float) and not math.isfinite(v):
                raise VerificationError(f"attribute '{where}' must be finite, got {v}")


def positive(value: int, name: str) -> None:
    """An integer attribute is > 0."""
    expect(value > 0, f"attribute '{name}' must be positive, got {value}")


# --- attribute values: IR <-> Python ---


def attr_to_python(attr: ir.Attribute) -> Any:
    """Converts a builtin attribute to a plain Python value (int, float, str, bool, list, dict)."""
    for cls in (ir.BoolAttr, ir.IntegerAttr, ir.FloatAttr, ir.StringAttr):
        if isinstance(attr, cls):
            return attr.value
    if isinstance(attr, ir.DenseI64ArrayAttr):
        return list(attr)
    if isinstance(attr, ir.ArrayAttr):
        return [attr_to_python(a) for a in attr]
    if isinstance(attr, ir.DictAttr):
        return {attr[i].name: attr_to_python(attr[i].attr) for i in range(len(attr))}
    if isinstance(attr, ir.TypeAttr):
        return str(attr.value)
    if isinstance(attr, ir.UnitAttr):
        return True
    raise TypeError(f"unsupported attribute {attr}")


def python_to_attr(value: Any) -> ir.Attribute:
    """Converts a Python value to a builtin attribute (bool, i64, f64, string, array, dict)."""
    if isinstance(value, ir.Attribute):
        return value
    if isinstance(value, bool):
        return ir.BoolAttr.get(value)
    if isinstance(value, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)
    if isinstance(value, float):
        return ir.FloatAttr.get(ir.F64Type.get(), value)
    if isinstance(value, str):
        return ir.StringAttr.get(value)
    if isinstance(value, dict):
        return ir.DictAttr.get({k: python_to_attr(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ir.DenseI64ArrayAttr.get(list(value))
        return ir.ArrayAttr.get([python_to_attr(v) for v in value])
    raise TypeError(f"cannot convert {value!r} to an attribute")


# --- the op base ---


class GraphOp:
    """What every mlacc op class has: verification and building through its `infer` function.

    nanobind op classes take a single base, so this is not a mixin: `op_base` copies these
    methods into each dialect's op base class.
    """

    @staticmethod
    def infer(**kwargs: Any) -> list[TensorInfo | None]:
        """Checks operand shapes/attributes and returns result types (None: result absent)."""
        raise NotImplementedError

    # -- field introspection (ext keeps the declared fields in `_fields`) --

    @classmethod
    def operand_fields(cls) -> list:
        return [f for f in cls._fields if type(f).__name__ == "OperandDef"]

    @classmethod
    def attribute_fields(cls) -> list:
        return [f for f in cls._fields if type(f).__name__ == "AttributeDef"]

    @classmethod
    def result_fields(cls) -> list:
        return [f for f in cls._fields if type(f).__name__ == "ResultDef"]

    def attribute_values(self) -> dict[str, Any]:
        """The op's declared attributes as Python values."""
        return {f.name: attr_to_python(getattr(self, f.name)) for f in self.attribute_fields()}

    def verify_invariants(self) -> bool:
        """MLIR's verifier hook: runs `infer` on the operands and compares the result types.

        Ops whose structure is off (operand/result counts, missing or mistyped attributes) are
        left to IRDL's checks, which run after this hook and name the problem precisely.
        """
        problem = structure_problem(self)
        if problem is not None:
            if problem:
                self.location.emit_error(f"'{self.OPERATION_NAME}' op {problem}")
            return not problem
        try:
            inputs = {
                f.name: _operand_info(getattr(self, f.name), f.name) for f in self.operand_fields()
            }
            attributes = self.attribute_values()
            expect_finite(attributes)
            expected = type(self).infer(**inputs, **attributes)
            _compare_results(self, expected)
        except VerificationError as err:
            self.location.emit_error(f"'{self.OPERATION_NAME}' op {err}")
            return False
        return True


_ATTRIBUTE_KINDS = {
    "IntegerAttr": ir.IntegerAttr,
    "FloatAttr": ir.FloatAttr,
    "StringAttr": ir.StringAttr,
    "DictAttr": ir.DictAttr,
    "DenseI64Array": ir.DenseI64ArrayAttr,
    "Flag": (ir.BoolAttr, ir.IntegerAttr),
}


def structure_problem(op: ir.OpView) -> str | None:
    """None when the op's operands, results and attributes have the declared structure; ""
    when IRDL will report what is wrong; a message for what IRDL does not check."""
    cls = type(op)
    operation = op.operation
    for kind, segments, values, fields in (
        ("operand", cls._ODS_OPERAND_SEGMENTS, operation.operands, cls.operand_fields()),
        ("result", cls._ODS_RESULT_SEGMENTS, operation.results, cls.result_fields()),
    ):
        attr = f"{kind}SegmentSizes"
        if segments is None:
            if len(values) != len(fields):
                return ""
            continue
        if attr not in operation.attributes:
            return f"needs the '{attr}' attribute (it has optional or variadic {kind}s)"
        problem = _segment_problem(operation.attributes[attr], attr, segments, len(values), kind)
        if problem:
            # IRDL names bad operand segments itself, but does not check result segments.
            return problem if kind == "result" else ""
    for field in cls.attribute_fields():
        if field.name not in operation.attributes:
            return ""
        kind = _ATTRIBUTE_KINDS.get(getattr(field.constraint, "__name__", ""))
        if kind is not None and not isinstance(operation.attributes[field.name], kind):
            return ""
    return None


def _segment_problem(
    attr: ir.Attribute, name: str, segments: Sequence[int], count: int, kind: str
) -> str | None:
    """What is wrong with a ``*SegmentSizes`` attribute (segments: 0 optional, 1 single,
    other variadic, as ext declares them), or None."""
    if not isinstance(attr, ir.DenseI32ArrayAttr):
        return f"attribute '{name}' must be an array<i32: ...>, got {attr}"
    sizes = list(ir.DenseI32ArrayAttr(attr))
    if len(sizes) != len(segments):
        return f"attribute '{name}' must have {len(segments)} entries, got {len(sizes)}"
    for i, (size, seg) in enumerate(zip(sizes, segments)):
        if size < 0 or (seg == 1 and size != 1) or (seg == 0 and size > 1):
            want = {1: "1", 0: "0 or 1"}.get(seg, ">= 0")
            return f"attribute '{name}' entry {i} must be {want}, got {size}"
    if sum(sizes) != count:
        return f"attribute '{name}' sums to {sum(sizes)}, but the op has {count} {kind}s"
    return None


def op_base(dialect: type, name: str) -> type:
    """The base class of `dialect`'s ops, carrying `GraphOp`'s methods.

    Every graph op is `Pure` (no memory effects, speculatable): the ops have value semantics,
    results are new values and no operand is written, so CSE merges identical ops and DCE
    drops unused ones. The in-place cache updates are the runtime's buffer decision on donated
    inputs, made after the IR (see `mla.cache_update`).
    """
    methods = {k: v for k, v in vars(GraphOp).items() if not k.startswith("__") or k == "__doc__"}
    return type(name, (dialect.Operation,), methods, traits=[ext.Pure])


def is_graph_op(cls: type) -> bool:
    """True for op classes built on `op_base` (every mla/moe/fp8/mlacc op)."""
    return getattr(cls, "verify_invariants", None) is GraphOp.verify_invariants or hasattr(
        cls, "infer"
    )


def _operand_info(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, ir.Value):
        info = tensor_info(value.type)
        if info is None:
            raise VerificationError(f"operand '{name}' must be a ranked tensor, got {value.type}")
        if 0 in info.shape:
            raise VerificationError(f"operand '{name}' has a zero-sized dimension ({info})")
        return info
    return [_operand_info(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _compare_results(op: GraphOp, expected: Sequence[TensorInfo | None]) -> None:
    fields = op.result_fields()
    for field, want in zip(fields, expected, strict=True):
        got_value = getattr(op, field.name)
        if want is None or got_value is None:
            if (want is None) != (got_value is None):
                state = "present" if got_value is not None else "absent"
                raise VerificationError(f"result '{field.name}' must not be {state} here")
            continue
        got = tensor_info(got_value.type)
        if got is None:
            raise VerificationError(
                f"result '{field.name}' must be a ranked tensor, got {got_value.type}"
            )
        if (
            got.dtype != want.dtype
            or got.rank != want.rank
            or any(
                g is not None and w is not None and g != w for g, w in zip(got.shape, want.shape)
            )
        ):
            raise VerificationError(f"result '{field.name}' has type {got}, expected {want}")


def build(op_cls: type, *, loc: ir.Location | None = None, **kwargs: Any) -> ir.Operation:
    """Creates an `op_cls` op from operand Values and Python attribute values.

    Result types come from the op's `infer`; they take the tensor kind (vtensor or builtin)
    of the first tensor operand.
    """
    operand_names = [f.name for f in op_cls.operand_fields()]
    attr_names = [f.name for f in op_cls.attribute_fields()]
    infos = {n: _operand_info(kwargs.get(n), n) for n in operand_names}
    attrs = {n: kwargs[n] for n in attr_names}
    expected = op_cls.infer(**infos, **attrs)
    prototype = next(_flatten(kwargs.get(n) for n in operand_names)).type
    results = {
        f.name: None if info is None else like(prototype, info)
        for f, info in zip(op_cls.result_fields(), expected, strict=True)
    }
    op = op_cls(
        **{n: kwargs.get(n) for n in operand_names},
        # Plain `ir.Attribute`s: ext treats a falsy attribute (BoolAttr false) as "absent".
        **{n: ir.Attribute(python_to_attr(v)) for n, v in attrs.items()},
        **results,
        loc=loc,
    )
    return op


def _flatten(values: Any) -> Any:
    for v in values:
        if v is None:
            continue
        if isinstance(v, ir.Value):
            yield v
        else:
            yield from _flatten(v)


def results_of(op: ir.OpView) -> ir.Value | tuple[ir.Value, ...]:
    """The op's results: one Value, or a tuple for several."""
    res = list(op.results)
    return res[0] if len(res) == 1 else tuple(res)
