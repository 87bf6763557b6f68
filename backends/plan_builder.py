"""Lowers graph-level MLIR (mla/moe/fp8/mlacc ops + torch dialect) to a run-side `Plan`.

Every public `func.func` becomes a plan `Function`. Torch-dialect constants and list
constructions fold into literal arguments; `torch.vtensor.literal` tensors become
artifact constants (weights named ``__constant.<n>``); dialect ops keep their attributes as
plain values; every other op becomes a step named after the op.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..dialects._mlir import func, ir
from ..dialects.base import attr_to_python
from ..dialects.locations import format_location
from ..dialects.types import tensor_info
from ..runtime.errors import CompileError
from ..runtime.plan import Arg, Function, Plan, Step, TensorSpec, lit, lst, ref

CONSTANT_PREFIX = "__constant."

# torch-dialect ops the builder folds into literal arguments or artifact constants (every
# plan-based target supports them without executing anything).
FOLDED_OPS = frozenset(
    {
        "torch.constant.int",
        "torch.constant.float",
        "torch.constant.bool",
        "torch.constant.str",
        "torch.constant.none",
        "torch.constant.number",
        "torch.constant.device",
        "torch.prim.ListConstruct",
        "torch.vtensor.literal",
    }
)


def runs_on_reference_kernels(op_name: str) -> bool:
    """True for ops a plan executor with the reference kernels (`PlanExecutor`) runs: dialect
    ops with reference semantics, weights, folded constants and torch-dialect ops."""
    from ..runtime.semantics import SEMANTICS
    from ..runtime.torch_ops import is_torch_op

    return (
        op_name in SEMANTICS
        or op_name == "mlacc.weight"
        or op_name in FOLDED_OPS
        or is_torch_op(op_name)
    )


_SCALAR_CONSTANTS = (
    "torch.constant.int",
    "torch.constant.float",
    "torch.constant.bool",
    "torch.constant.str",
    "torch.constant.number",
    "torch.constant.device",
)


def entry_functions(module: ir.Module) -> list[func.FuncOp]:
    """The module's public functions (its entry points), in order."""
    out = []
    for op in module.body.operations:
        if isinstance(op, func.FuncOp) and "sym_visibility" not in op.attributes:
            out.append(op)
    return out


def spec_of(t: ir.Type) -> TensorSpec | None:
    """The plan spec of a tensor type; None for non-tensors."""
    info = tensor_info(t)
    return None if info is None else TensorSpec(list(info.shape), info.dtype)


class PlanBuilder:
    """Builds one `Plan` (and the constants it needs) from a module.

    Targets extend it by overriding `step`, which turns one op into a plan step (or None for
    ops that compute nothing, e.g. annotations); `producers` maps each value to the step that
    defines it, so an annotation can attach data (a cost) to an earlier step.
    """

    def __init__(self) -> None:
        self.constants: dict[str, torch.Tensor] = {}
        self.producers: dict[ir.Value, Step] = {}
        self._ids: dict[ir.Value, int] = {}
        self._literals: dict[ir.Value, Arg] = {}

    def build(self, module: ir.Module) -> Plan:
        """Lowers every entry point of `module`."""
        functions = {}
        for f in entry_functions(module):
            name = ir.StringAttr(f.attributes["sym_name"]).value
            functions[name] = self._function(name, f)
        if not functions:
            raise CompileError("module has no public func.func to compile")
        return Plan(functions=functions)

    def _function(self, name: str, f: func.FuncOp) -> Function:
        block = f.regions[0].blocks[0]
        inputs, input_specs = [], []
        for i, arg in enumerate(block.arguments):
            spec = spec_of(arg.type)
            if spec is None:
                raise CompileError(
                    f"entry point '{name}' argument {i} has type {arg.type}; "
                    "entry points take ranked tensors"
                )
            inputs.append(self._define(arg))
            input_specs.append(spec)
        steps: list[Step] = []
        outputs: list[Arg] = []
        output_specs: list[TensorSpec | None] = []
        for op in block.operations:
            if op.operation.name == "func.return":
                outputs = [self._arg(v) for v in op.operands]
                output_specs = [spec_of(v.type) for v in op.operands]
                continue
            step = self.step(op)
            if step is not None:
                steps.append(step)
                for result in op.results:
                    self.producers[result] = step
        donated = self._donations(block, steps, outputs)
        return Function(name, inputs, input_specs, steps, outputs, output_specs, donated)

    def _donations(self, block: ir.Block, steps: list[Step], outputs: list[Arg]) -> dict[int, int]:
        """Marks the updates of entry-point buffers that can run in place; returns the
        donations (input index -> output index).

        An input is donated when its only user is an op with an in-place form that updates
        it (`semantics.IN_PLACE`) and the updated buffer is returned: nothing reads the old
        contents after the update, so the runtime's buffer is written and handed back.
        """
        from ..runtime.semantics import IN_PLACE

        by_id = {o["ref"]: i for i, o in enumerate(outputs) if "ref" in o}
        donated: dict[int, int] = {}
        for index, arg in enumerate(block.arguments):
            uses = list(arg.uses)
            if len(uses) != 1:
                continue
            user = uses[0].owner
            form = IN_PLACE.get(user.name)
            buffer = None if form is None else getattr(user.opview, form.operand)
            if buffer is None or buffer != arg:
                continue
            updated = getattr(user.opview, form.result)
            out = by_id.get(self._ids.get(updated, -1))
            if out is None:
                continue
            self.producers[updated].in_place = True
            donated[index] = out
        return donated

    def _define(self, value: ir.Value) -> int:
        vid = len(self._ids)
        self._ids[value] = vid
        return vid

    def _arg(self, value: ir.Value) -> Arg:
        if value in self._literals:
            return self._literals[value]
        return ref(self._ids[value])

    def step(self, op: ir.OpView) -> Step | None:
        """The plan step of `op`; None for ops folded into literals or computing nothing."""
        name = op.operation.name
        result = op.results[0] if len(op.results) == 1 else None
        if name in _SCALAR_CONSTANTS:
            self._literals[result] = lit(attr_to_python(op.attributes["value"]))
            return None
        if name == "torch.constant.none":
            self._literals[result] = lit(None)
            return None
        if name == "torch.prim.ListConstruct":
            self._literals[result] = lst([self._arg(v) for v in op.operands])
            return None
        loc = format_location(op.location)
        if name == "torch.vtensor.literal":
            key = f"{CONSTANT_PREFIX}{len(self.constants)}"
            self.constants[key] = _dense_to_tensor(op.attributes["value"], loc)
            return Step("mlacc.weight", [], [self._define(result)], {"key": key}, loc)
        if hasattr(type(op), "infer") or name == "mlacc.weight":
            return self._dialect_step(op, loc)
        args = [self._arg(v) for v in op.operands]
        return Step(name, args, [self._define(r) for r in op.results], {}, loc)

    def _dialect_step(self, op: ir.OpView, loc: str) -> Step:
        cls = type(op)
        args = []
        for field in cls.operand_fields():
            value = getattr(op, field.name)
            if value is None:
                args.append(lit(None))
            elif isinstance(value, ir.Value):
                args.append(self._arg(value))
            else:
                args.append(lst([self._arg(v) for v in value]))
        results = []
        for field in cls.result_fields():
            value = getattr(op, field.name)
            results.append(None if value is None else self._define(value))
        attrs = {f.name: attr_to_python(getattr(op, f.name)) for f in cls.attribute_fields()}
        return Step(op.operation.name, args, results, attrs, loc)


def _dense_to_tensor(attr: ir.Attribute, loc: str) -> torch.Tensor:
    try:
        array = np.array(attr)
    except Exception as err:  # noqa: BLE001 - unreadable constants (resource blobs, ...)
        raise CompileError(f"{loc}: cannot read constant {str(attr)[:60]}: {err}") from None
    if isinstance(attr, ir.DenseElementsAttr) and attr.is_splat:
        shape = ir.ShapedType(attr.type).shape
        array = np.full(shape, array.reshape(-1)[0] if array.size else 0, dtype=array.dtype)
    return torch.from_numpy(np.ascontiguousarray(array)).clone()


def build_plan(
    module: ir.Module, builder: PlanBuilder | None = None
) -> tuple[Plan, dict[str, Any]]:
    """Lowers `module` to a plan (with `builder`, default `PlanBuilder()`); returns (plan,
    constants to store beside the weights)."""
    builder = builder or PlanBuilder()
    plan = builder.build(module)
    return plan, builder.constants
