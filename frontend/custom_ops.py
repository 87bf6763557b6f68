"""`torch.library` custom ops, one per dialect op, generated from the op definitions.

For every mla/moe/fp8 op there is a custom op ``mlacc::<dialect>_<op>`` (``mla.attention`` ->
``torch.ops.mlacc.mla_attention``) whose schema follows the op's fields: operands in field
order (``Tensor``, ``Tensor?`` for optional ones, ``Tensor[]`` for variadic ones), then the
attributes (``int``, ``float``, ``str``, ``bool``, ``int[]``; dictionary attributes travel as
JSON ``str``). Its implementation is the op's reference semantics; its fake (meta) kernel is
the op's own ``infer`` function. Capture modules call these ops, torch.export records them,
torch-mlir imports them as ``torch.operator "torch.mlacc.<name>"`` and `raising` turns them
back into the dialect op. One definition drives all of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..dialects import all_ops
from ..dialects.types import TensorInfo
from ..runtime.semantics import SEMANTICS

NAMESPACE = "mlacc"

_ATTRIBUTE_SCHEMA = {
    "IntegerAttr": "int",
    "FloatAttr": "float",
    "StringAttr": "str",
    "Flag": "bool",
    "DenseI64Array": "int[]",
    "DictAttr": "str",
}


@dataclass(frozen=True)
class CustomOp:
    """How one dialect op appears as a torch custom op."""

    op_class: type
    name: str  # "mla_attention"
    operands: tuple[tuple[str, str], ...]  # (field name, "single" | "optional" | "variadic")
    attributes: tuple[tuple[str, str], ...]  # (field name, schema type)
    results: tuple[tuple[str, bool], ...]  # (field name, optional)

    @property
    def qualified_name(self) -> str:
        return f"{NAMESPACE}::{self.name}"

    @property
    def torch_operator_name(self) -> str:
        """How torch-mlir names the op in `torch.operator`."""
        return f"torch.{NAMESPACE}.{self.name}"

    def schema(self) -> str:
        args = []
        for name, kind in self.operands:
            args.append(
                {"single": "Tensor", "optional": "Tensor?", "variadic": "Tensor[]"}[kind]
                + f" {name}"
            )
        args += [f"{kind} {name}" for name, kind in self.attributes]
        rets = ["Tensor?" if optional else "Tensor" for _, optional in self.results]
        ret = rets[0] if len(rets) == 1 else f"({', '.join(rets)})"
        return f"({', '.join(args)}) -> {ret}"

    def __call__(self, *operands: Any, **attributes: Any) -> Any:
        """Calls the torch op: operands positionally, attributes by name (dicts as dicts)."""
        values = [_encode(attributes[name], kind) for name, kind in self.attributes]
        packet = getattr(getattr(torch.ops, NAMESPACE), self.name)
        return packet(*operands, *values)


def _encode(value: Any, kind: str) -> Any:
    if kind == "str" and isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _variadicity(field: Any) -> str:
    return str(field.variadicity).rsplit(".", 1)[-1]


def _describe(op_class: type) -> CustomOp:
    dialect, _, op = op_class.OPERATION_NAME.partition(".")
    attrs = []
    for f in op_class.attribute_fields():
        kind = _ATTRIBUTE_SCHEMA[getattr(f.constraint, "__name__", "")]
        attrs.append(
            (f.name, "dict" if getattr(f.constraint, "__name__", "") == "DictAttr" else kind)
        )
    return CustomOp(
        op_class=op_class,
        name=f"{dialect}_{op}",
        operands=tuple((f.name, _variadicity(f)) for f in op_class.operand_fields()),
        attributes=tuple((n, "str" if k == "dict" else k) for n, k in attrs),
        results=tuple((f.name, _variadicity(f) == "optional") for f in op_class.result_fields()),
    )


def _dict_attribute_names(op_class: type) -> set[str]:
    return {
        f.name
        for f in op_class.attribute_fields()
        if getattr(f.constraint, "__name__", "") == "DictAttr"
    }


def _decode_attributes(custom: CustomOp, values: tuple) -> dict[str, Any]:
    dicts = _dict_attribute_names(custom.op_class)
    out = {}
    for (name, _), value in zip(custom.attributes, values):
        out[name] = json.loads(value) if name in dicts else value
    return out


def _implementation(custom: CustomOp) -> Callable[..., Any]:
    semantics = SEMANTICS[custom.op_class.OPERATION_NAME]
    n = len(custom.operands)

    def impl(*args: Any) -> Any:
        result = semantics(*args[:n], **_decode_attributes(custom, args[n:]))
        return result

    return impl


def _info(t: torch.Tensor) -> TensorInfo:
    return TensorInfo(tuple(t.shape), str(t.dtype).removeprefix("torch."))


def _fake(custom: CustomOp) -> Callable[..., Any]:
    n = len(custom.operands)

    def fake(*args: Any) -> Any:
        infos = {}
        device = None
        for (name, kind), value in zip(custom.operands, args[:n]):
            if value is None:
                infos[name] = None
            elif kind == "variadic":
                infos[name] = [_info(v) for v in value]
                device = device or (value[0].device if value else None)
            else:
                infos[name] = _info(value)
                device = device or value.device
        results = custom.op_class.infer(**infos, **_decode_attributes(custom, args[n:]))
        tensors = tuple(
            None
            if r is None
            else torch.empty(r.shape, dtype=getattr(torch, r.dtype), device=device)
            for r in results
        )
        return tensors[0] if len(tensors) == 1 else tensors

    return fake


def _define_all() -> dict[str, CustomOp]:
    ops = {}
    for op_class in all_ops():
        if op_class.OPERATION_NAME not in SEMANTICS:
            continue  # mlacc.weight: weights are module parameters, not ops
        custom = _describe(op_class)
        torch.library.define(custom.qualified_name, custom.schema())
        torch.library.impl(custom.qualified_name, "CompositeExplicitAutograd")(
            _implementation(custom)
        )
        torch.library.register_fake(custom.qualified_name)(_fake(custom))
        ops[op_class.OPERATION_NAME] = custom
    return ops


CUSTOM_OPS: dict[str, CustomOp] = _define_all()

# `mlacc::weight`: a named reference to one of the model's weights (`mlacc.weight` once raised).
WEIGHT_OP = f"torch.{NAMESPACE}.weight"
torch.library.define(f"{NAMESPACE}::weight", "(str key, int[] shape, str dtype) -> Tensor")


@torch.library.impl(f"{NAMESPACE}::weight", "CompositeExplicitAutograd")
def _weight_impl(key: str, shape: list[int], dtype: str) -> torch.Tensor:
    raise RuntimeError(f"weight '{key}' is a reference for capture; it has no data")


@torch.library.register_fake(f"{NAMESPACE}::weight")
def _weight_fake(key: str, shape: list[int], dtype: str) -> torch.Tensor:
    return torch.empty(shape, dtype=getattr(torch, dtype))


def weight_ref(key: str, like: torch.Tensor) -> torch.Tensor:
    """A reference to weight `key` with `like`'s shape and dtype, for tracing."""
    dtype = str(like.dtype).removeprefix("torch.")
    return getattr(torch.ops, NAMESPACE).weight(key, list(like.shape), dtype)


# `mlacc::layer_input`: an identity marking a decoder layer's input for repeated-layer capture
# (`repeated_layers`); capture removes it before anything else sees the module.
LAYER_INPUT_OP = f"torch.{NAMESPACE}.layer_input"
torch.library.define(f"{NAMESPACE}::layer_input", "(Tensor x, int layer) -> Tensor")


@torch.library.impl(f"{NAMESPACE}::layer_input", "CompositeExplicitAutograd")
def _layer_input_impl(x: torch.Tensor, layer: int) -> torch.Tensor:
    return x.clone()


@torch.library.register_fake(f"{NAMESPACE}::layer_input")
def _layer_input_fake(x: torch.Tensor, layer: int) -> torch.Tensor:
    return torch.empty_like(x)


def mark_layer_input(x: torch.Tensor, layer: int) -> torch.Tensor:
    """`x` (an identity), marked in the traced graph as the input of decoder layer `layer`
    (``layer == len(blocks)``: the last layer's output)."""
    return getattr(torch.ops, NAMESPACE).layer_input(x, layer)


BY_TORCH_NAME: dict[str, CustomOp] = {c.torch_operator_name: c for c in CUSTOM_OPS.values()}


def op(name: str) -> CustomOp:
    """The custom op for dialect op `name` (e.g. "mla.attention")."""
    return CUSTOM_OPS[name]
