"""`--llvm-lower`: graph-level IR (mla/moe/fp8 + torch dialect) -> linalg on builtin tensors.

Per function:

1. every ``mlacc.weight`` becomes a function argument after the inputs (the function's
   ``llvm.weights`` attribute lists their keys, ``llvm.inputs`` counts the real inputs): weights
   are memrefs at run time, never constants in the code;
2. every mla/moe/fp8 op (and ``torch.aten.linear``) is replaced by a call to a private kernel
   function its lowering writes (`mlacc.backends.llvm.ops`), between ``torch_c`` casts;
3. outputs that are a cache input updated by ``mla.cache_update`` are recorded in
   ``llvm.donated`` (``[output, input, ...]``): code generation updates them in place;
4. ``inline`` and torch-mlir's ``torch-backend-to-linalg-on-tensors-backend-pipeline`` lower the
   remaining torch ops and fold the casts away.

An op without a lowering is an error at the op's location, naming it::

    %y = "mla.rms_norm"(%x, %w) {eps = 1e-6}      func.func @f(%x: tensor<..>, %w: tensor<..>)
      : (!torch.vtensor<..>, ...) -> ...      ->    %y = linalg.generic {... reduction ...}
                                                     %z = linalg.generic {... math.rsqrt ...}
"""

from __future__ import annotations

from dataclasses import dataclass

from mlacc.dialects._mlir import func, ir, passmanager
from mlacc.dialects.base import attr_to_python
from mlacc.dialects.types import tensor_info
from mlacc.passes.registry import PassError, option, register_pass

from .emit import TT, LoweringError
from .ops import Kernel, fusions, lowerings

# torch ops lowered by our own patterns: op -> names of its tensor operands, in order
# (operands defined by torch.constant.none are absent).
TORCH_OPERANDS = {"torch.aten.linear": ("input", "weight", "bias")}

# torch-mlir's torch-backend-to-linalg-on-tensors-backend-pipeline, step by step, without its
# final contract check (which rejects calls to our kernels); `_check_lowered` replaces it.
TORCH_PIPELINE = (
    "builtin.module("
    "func.func(torch-decompose-complex-ops),canonicalize,"
    "func.func(torch-fuse-quantized-ops),func.func(torch-scalarize-shapes),"
    "func.func(convert-torch-to-tmtensor),func.func(convert-torch-to-tensor),"
    "func.func(convert-torch-to-linalg),func.func(convert-torch-to-scf),"
    "func.func(convert-torch-to-arith),convert-torch-conversion-to-mlprogram,"
    "func.func(memref-expand),func.func(canonicalize),resolve-shaped-type-result-dims,"
    "func.func(cse),torch-func-backend-type-conversion,"
    "func.func(torch-finalizing-backend-type-conversion),canonicalize,cse)"
)
STRUCTURAL = frozenset({"func.return", "mlacc.weight"})


@dataclass(frozen=True)
class LlvmLowerOptions:
    """Options of `--llvm-lower`."""

    torch_pipeline: bool = option(True, "lower the remaining torch ops with torch-mlir")


def run(module: ir.Operation, options: LlvmLowerOptions) -> None:
    """The pass: see the module docstring."""
    lower_module(module, torch_pipeline=options.torch_pipeline)


def lower_module(module: ir.Operation, *, torch_pipeline: bool = True) -> None:
    """Lowers every function of `module` in place (raises PassError at an op it cannot lower)."""
    _load_torch_c(module.context)
    kernels = _KernelTable()
    for op in list(module.regions[0].blocks[0].operations):
        if isinstance(op, func.FuncOp) and op.regions[0].blocks:
            _lower_function(op, kernels)
    kernels.insert_into(module)
    if torch_pipeline:
        passmanager.PassManager.parse(TORCH_PIPELINE).run(module)
        _check_lowered(module)


def _check_lowered(module: ir.Operation) -> None:
    """PassError at the first torch op that torch-mlir's conversions left behind."""
    left: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name.startswith(("torch.", "torch_c.")):
            left.append(op)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    if left:
        raise PassError(
            f"op '{left[0].name}' is not supported by target 'llvm' (torch-mlir has no "
            "linalg lowering for it)",
            op=left[0],
        )


def _load_torch_c(ctx: ir.Context) -> None:
    """Loads torch-mlir's `torch_c` dialect (not registered for parsing until a pass needs it)."""
    if ctx.is_dialect_loaded("torch_c"):
        return
    with ctx:
        empty = ir.Module.parse("module {}")
        passmanager.PassManager.parse("builtin.module(func.func(convert-torch-to-linalg))").run(
            empty.operation
        )


class _KernelTable:
    """The kernel functions written so far, deduplicated by text."""

    def __init__(self) -> None:
        self.by_text: dict[str, str] = {}
        self.texts: list[str] = []

    def add(self, op_name: str, signature: str, body: list[str]) -> str:
        stem = op_name.replace(".", "_")
        body = _dedupe_constants(body)
        key = signature + "\n".join(body)
        if key in self.by_text:
            return self.by_text[key]
        name = f"__llvm_{stem}_{len(self.texts)}"
        self.by_text[key] = name
        indented = "\n".join(f"    {line}" for line in "\n".join(body).splitlines())
        self.texts.append(f"  func.func private @{name}{signature} {{\n{indented}\n  }}")
        return name

    def insert_into(self, module: ir.Operation) -> None:
        if not self.texts:
            return
        text = "module {\n" + "\n".join(self.texts) + "\n}"
        try:
            parsed = ir.Module.parse(text, context=module.context)
        except ir.MLIRError as err:
            raise PassError(f"internal error: a generated kernel does not parse: {err}") from None
        body = module.regions[0].blocks[0]
        for fn in list(parsed.body.operations):
            body.append(fn.operation)


def _dedupe_constants(body: list[str]) -> list[str]:
    """Drops repeated identical top-level ``arith.constant`` definitions (helpers that each
    need ``%c1`` define it; the first definition serves all)."""
    seen: set[str] = set()
    out = []
    for line in body:
        if line.startswith("%") and " = arith.constant " in line and "\n" not in line:
            if line in seen:
                continue
            seen.add(line)
        out.append(line)
    return out


def _lower_function(f: func.FuncOp, kernels: _KernelTable) -> None:
    block = f.regions[0].blocks[0]
    _weights_to_arguments(f)
    _record_donations(f)
    table = lowerings()
    ops = list(block.operations)
    fused = _fused_pairs(ops)
    consumers = set(fused.values())
    for i, op in enumerate(ops):
        if i in consumers:  # lowered with its producer (and erased)
            continue
        name = op.operation.name
        if i in fused:
            consumer = ops[fused[i]]
            lower = fusions()[(name, consumer.operation.name)]
            _replace_pair(op, consumer, lower, kernels)
        elif name in table:
            _replace(op, table[name], kernels)
        elif name in STRUCTURAL or name.startswith("torch."):
            continue
        else:
            raise PassError(f"op '{name}' is not supported by target 'llvm'", op=op)


def _weights_to_arguments(f: func.FuncOp) -> None:
    """Each distinct ``mlacc.weight`` key becomes one new argument of `f`."""
    block = f.regions[0].blocks[0]
    f_type = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value)
    n_inputs = len(f_type.inputs)
    keys: dict[str, ir.Value] = {}
    for op in list(block.operations):
        if op.operation.name != "mlacc.weight":
            continue
        key = ir.StringAttr(op.attributes["key"]).value
        if key not in keys:
            keys[key] = block.add_argument(op.results[0].type, op.location)
        elif keys[key].type != op.results[0].type:
            raise PassError(f"weight '{key}' is used with two types", op=op)
        op.results[0].replace_all_uses_with(keys[key])
        op.operation.erase()
    inputs = [a.type for a in block.arguments]
    f.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(inputs, f_type.results))
    f.attributes["llvm.inputs"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), n_inputs)
    f.attributes["llvm.weights"] = ir.ArrayAttr.get([ir.StringAttr.get(k) for k in keys])


def _record_donations(f: func.FuncOp) -> None:
    """Outputs that are an input cache after ``mla.cache_update`` (in place at run time)."""
    block = f.regions[0].blocks[0]
    ret = next(op for op in block.operations if op.operation.name == "func.return")
    pairs: list[int] = []
    for out_index, value in enumerate(ret.operands):
        source = _cache_source(value)
        if source is not None:
            pairs += [out_index, source]
    i64 = ir.IntegerType.get_signless(64)
    f.attributes["llvm.donated"] = ir.ArrayAttr.get([ir.IntegerAttr.get(i64, p) for p in pairs])


def _cache_source(value: ir.Value) -> int | None:
    """The argument index `value` is an in-place update of, if it is one."""
    seen = 0
    while isinstance(value.owner, ir.Operation | ir.OpView) and seen < 1000:
        owner = value.owner
        if owner.name != "mla.cache_update":
            return None
        value = owner.operands[0]
        seen += 1
    if isinstance(value, ir.BlockArgument) and seen > 0:
        return value.arg_number
    return None


def _fused_pairs(ops: list[ir.OpView]) -> dict[int, int]:
    """Producer index -> consumer index of the op pairs lowered as one kernel (`FUSIONS`)."""
    pairs = fusions()
    index = {}
    for i, op in enumerate(ops):
        index.setdefault(op.operation.name, []).append(i)
    out: dict[int, int] = {}
    for i, op in enumerate(ops):
        consumer = _sole_consumer(op)
        if consumer is None or (op.operation.name, consumer.operation.name) not in pairs:
            continue
        j = next(
            j for j in index[consumer.operation.name] if ops[j].operation == consumer.operation
        )
        out[i] = j
    return out


def _sole_consumer(op: ir.OpView) -> ir.OpView | None:
    """The op whose first operand is `op`'s only result, if that is the result's only use."""
    results = list(op.results)
    if len(results) != 1:
        return None
    uses = list(results[0].uses)
    if len(uses) != 1 or uses[0].operand_number != 0:
        return None
    return uses[0].owner


def _replace_pair(producer: ir.OpView, consumer: ir.OpView, lower, kernels: _KernelTable) -> None:
    """Replaces `consumer(producer(...))` by a call of one kernel `lower` writes for both."""
    name = f"{producer.operation.name}_{consumer.operation.name.split('.')[-1]}"
    try:
        kernel, operands = _kernel_of(producer)
        outer, extra = _kernel_of(consumer)
        if extra[1:]:
            raise LoweringError("a fused consumer takes only the producer's result")
        kernel.op_name, kernel.results = name, outer.results
        kernel.attrs.update({f"{consumer.operation.name}.{k}": v for k, v in outer.attrs.items()})
        body = lower(kernel)
    except LoweringError as err:
        raise PassError(f"cannot lower '{name}' for target 'llvm': {err}", op=consumer) from None
    _call_kernel(consumer, name, kernel, operands, body, kernels)
    producer.operation.erase()


def _replace(op: ir.OpView, lower, kernels: _KernelTable) -> None:
    """Replaces `op` by a call of the kernel `lower` writes for it."""
    name = op.operation.name
    try:
        kernel, operands = _kernel_of(op)
        body = lower(kernel)
    except LoweringError as err:
        raise PassError(f"cannot lower '{name}' for target 'llvm': {err}", op=op) from None
    _call_kernel(op, name, kernel, operands, body, kernels)


def _call_kernel(
    op: ir.OpView,
    name: str,
    kernel: Kernel,
    operands: list[ir.Value],
    body: list[str],
    kernels: _KernelTable,
) -> None:
    """Replaces `op`'s results by those of a call of the kernel `body` on `operands`."""
    arg_types = [t for _, t in kernel.args.values()]
    sig_args = ", ".join(f"{n}: {t}" for n, t in kernel.args.values())
    results = ", ".join(str(t) for t in kernel.results)
    signature = f"({sig_args}) -> ({results})"
    callee = kernels.add(name, signature, body)
    with ir.InsertionPoint(op), op.location:
        casts = [
            _cast("torch_c.to_builtin_tensor", v, ir.Type.parse(str(t)))
            for v, t in zip(operands, arg_types)
        ]
        call = func.CallOp([ir.Type.parse(str(t)) for t in kernel.results], callee, casts)
        outs = [
            _cast("torch_c.from_builtin_tensor", r, old.type)
            for r, old in zip(call.results, _live_results(op))
        ]
    for old, new in zip(_live_results(op), outs):
        old.replace_all_uses_with(new)
    op.operation.erase()


def _cast(name: str, value: ir.Value, to: ir.Type) -> ir.Value:
    return ir.Operation.create(name, results=[to], operands=[value]).results[0]


def _live_results(op: ir.OpView) -> list[ir.Value]:
    """The op's results that exist (absent optional results have no value)."""
    if not hasattr(type(op), "result_fields"):
        return list(op.results)
    out = []
    for field in type(op).result_fields():
        value = getattr(op, field.name)
        if value is not None:
            out.append(value)
    return out


def _kernel_of(op: ir.OpView) -> tuple[Kernel, list[ir.Value]]:
    """The `Kernel` description of `op` and the graph values of its tensor operands."""
    name = op.operation.name
    args: dict[str, tuple[str, TT]] = {}
    operands: list[ir.Value] = []
    attrs = {}
    if name in TORCH_OPERANDS:
        fields = zip(TORCH_OPERANDS[name], op.operands)
        values = [(f, v) for f, v in fields if _is_tensor(v)]
    else:
        cls = type(op)
        values = []
        for field in cls.operand_fields():
            value = getattr(op, field.name)
            if value is None:
                continue
            if not isinstance(value, ir.Value):
                raise LoweringError(f"variadic operand '{field.name}' is not supported")
            values.append((field.name, value))
        attrs = {f.name: attr_to_python(getattr(op, f.name)) for f in cls.attribute_fields()}
    for field_name, value in values:
        info = tensor_info(value.type)
        if info is None:
            raise LoweringError(f"operand '{field_name}' has type {value.type}")
        args[field_name] = (f"%a_{field_name}", TT.of(info))
        operands.append(value)
    results = []
    for r in _live_results(op):
        info = tensor_info(r.type)
        if info is None:
            raise LoweringError(f"result of type {r.type} is not a ranked tensor")
        results.append(TT.of(info))
    return Kernel(name, args, results, attrs), operands


def _is_tensor(value: ir.Value) -> bool:
    return tensor_info(value.type) is not None


register_pass(
    "llvm-lower",
    "Lower mla/moe/fp8 and torch ops to linalg/tensor/arith/scf for the llvm (CPU) target",
    LlvmLowerOptions,
    run,
)
