"""Code generation for the `llvm` target: linalg on tensors -> native shared object.

Stages (each ``module -> module`` in place, run in order by `generate`):

- ``bufferize``: one-shot bufferization across function boundaries; caches donated by the
  lowering (``llvm.donated``) must come back as the very argument buffer (updated in place),
  and are then dropped from the results; other results become out-parameters;
- ``schedule``: tiling + vectorization of contractions (`schedule`), elementwise fusion;
- ``to_llvm``: loops, C wrappers (``_mlir_ciface_<entry>``), LLVM dialect;
- ``link``: ExecutionEngine object dump + ``cc -shared`` -> the .so bytes.

`generate` also returns the ABI of each entry point (argument order, shapes, dtypes, which
outputs are donated inputs): the run side calls the object from that description alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlacc.dialects._mlir import execution_engine, func, ir, passmanager
from mlacc.runtime.errors import CompileError

from .emit import ELEMENT
from .support import SOURCE as SUPPORT_SOURCE

_DTYPE_OF = {v: k for k, v in ELEMENT.items()}


BUFFERIZE = (
    "builtin.module("
    "func.func(refback-generalize-tensor-pad),"
    "func.func(refback-generalize-tensor-concat),"
    "func.func(tm-tensor-bufferize),"
    "eliminate-empty-tensors,"
    "one-shot-bufferize{bufferize-function-boundaries "
    "function-boundary-type-conversion=identity-layout-map},"
    "refback-mlprogram-bufferize,"
    "canonicalize,cse)"
)
OUT_PARAMS = (
    "builtin.module(buffer-results-to-out-params{hoist-static-allocs modify-public-functions},"
    "canonicalize,buffer-deallocation-pipeline,canonicalize)"
)
TO_LLVM = (
    "builtin.module("
    "scf-forall-to-parallel,"
    "convert-scf-to-openmp,"
    "canonicalize,"
    "func.func(tm-tensor-to-loops),"
    "func.func(convert-linalg-to-loops),"
    "func.func(arith-expand{include-bf16=true}),"
    "lower-affine,"
    "func.func(llvm-request-c-wrappers),"
    # full unroll: no per-iteration stack temporaries for n-D transfers (unoptimized code
    # would grow the stack every loop iteration until it overflows)
    "convert-vector-to-scf{full-unroll=true},"
    "convert-scf-to-cf,"
    "convert-vector-to-llvm{enable-x86},"
    "expand-strided-metadata,"
    "lower-affine,"
    "convert-to-llvm,"
    "convert-openmp-to-llvm,"
    "reconcile-unrealized-casts)"
)


@dataclass
class EntryAbi:
    """How to call one entry point's native function."""

    name: str
    symbol: str
    inputs: list[dict[str, Any]]  # {"shape", "dtype"} per real input
    weights: list[dict[str, Any]]  # {"key", "shape", "dtype"}
    outputs: list[dict[str, Any]]  # {"shape", "dtype", "donated": input index | None}
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "symbol": self.symbol,
            "inputs": self.inputs,
            "weights": self.weights,
            "outputs": self.outputs,
            **self.extra,
        }


def run_stage(module: ir.Module, pipeline: str, stage: str) -> None:
    """Runs one upstream pipeline; a failure is a CompileError naming the stage."""
    try:
        passmanager.PassManager.parse(pipeline, context=module.context).run(module.operation)
    except ir.MLIRError as err:
        first = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CompileError(f"llvm target: stage '{stage}' failed: {detail}") from None


def entry_functions(module: ir.Module) -> list[func.FuncOp]:
    """The public functions of `module`."""
    return [
        op
        for op in module.body.operations
        if isinstance(op, func.FuncOp) and "sym_visibility" not in op.attributes
    ]


def bufferize(module: ir.Module) -> dict[str, EntryAbi]:
    """Tensors -> memrefs; donated caches in place; returns the ABI of every entry point."""
    before = {_name(f): _signature(f) for f in entry_functions(module)}
    run_stage(module, BUFFERIZE, "bufferize")
    _forward_returned_arguments(module)
    abis = {}
    for f in entry_functions(module):
        name = _name(f)
        donated = _drop_donated_results(f)
        inputs, weights, results = before[name]
        outputs = []
        for i, spec in enumerate(results):
            outputs.append({**spec, "donated": donated.get(i)})
        abis[name] = EntryAbi(name, f"_mlir_ciface_{name}", inputs, weights, outputs)
    run_stage(module, OUT_PARAMS, "out-params")
    return abis


def _name(f: func.FuncOp) -> str:
    return ir.StringAttr(f.attributes["sym_name"]).value


def _spec(t: ir.Type) -> dict[str, Any]:
    shaped = ir.ShapedType(t)
    elem = str(shaped.element_type)
    if elem not in _DTYPE_OF:
        raise CompileError(f"llvm target: entry point type {t} is not supported")
    return {"shape": list(shaped.shape), "dtype": _DTYPE_OF[elem]}


def _signature(f: func.FuncOp) -> tuple[list, list, list]:
    f_type = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value)
    n_inputs = ir.IntegerAttr(f.attributes["llvm.inputs"]).value
    keys = [ir.StringAttr(k).value for k in ir.ArrayAttr(f.attributes["llvm.weights"])]
    specs = [_spec(t) for t in f_type.inputs]
    inputs = specs[:n_inputs]
    weights = [{"key": k, **s} for k, s in zip(keys, specs[n_inputs:])]
    return inputs, weights, [_spec(t) for t in f_type.results]


def _forward_returned_arguments(module: ir.Module) -> None:
    """A call result that the callee returns as its own argument buffer (an in-place update,
    e.g. the KV cache kernel) is replaced by the call's operand, so callers see the aliasing."""
    returned: dict[str, dict[int, int]] = {}
    for op in module.body.operations:
        if not isinstance(op, func.FuncOp) or not op.regions[0].blocks:
            continue
        block = op.regions[0].blocks[0]
        ret = block.operations[len(block.operations) - 1]
        args = list(block.arguments)
        same = {i: args.index(v) for i, v in enumerate(ret.operands) if v in args}
        if same:
            returned[_name(op)] = same

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "func.call":
            callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
            for i, j in returned.get(callee, {}).items():
                op.results[i].replace_all_uses_with(op.operands[j])
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)


def _drop_donated_results(f: func.FuncOp) -> dict[int, int]:
    """Checks each donated result is its input buffer itself and removes it from the results;
    returns {output index: input index}."""
    pairs = [ir.IntegerAttr(a).value for a in ir.ArrayAttr(f.attributes["llvm.donated"])]
    donated = dict(zip(pairs[0::2], pairs[1::2]))
    if not donated:
        return {}
    block = f.regions[0].blocks[0]
    ret = block.operations[len(block.operations) - 1]
    kept = []
    for i, value in enumerate(ret.operands):
        if i not in donated:
            kept.append(value)
            continue
        arg = block.arguments[donated[i]]
        if value != arg:
            raise CompileError(
                f"llvm target: entry point '{_name(f)}' output {i} (a KV cache) is not updated "
                "in place: bufferization copied it"
            )
    with ir.InsertionPoint(ret), ret.location:
        func.ReturnOp(kept)
    ret.operation.erase()
    f_type = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value)
    f.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get(f_type.inputs, [v.type for v in kept])
    )
    return donated


def schedule(module: ir.Module, threads: bool = True) -> None:
    """Tiling + vectorization of the hot loops, thread level (see `schedule`)."""
    from .schedule import apply_schedule

    apply_schedule(module, threads)


def to_llvm(module: ir.Module) -> None:
    """Loops and vectors -> LLVM dialect with C-interface wrappers."""
    run_stage(module, TO_LLVM, "to-llvm")


def link(module: ir.Module, symbols: list[str], opt_level: int = 3) -> bytes:
    """Compiles the LLVM-dialect `module` to an object and links it into a shared object
    (looking up `symbols` first makes the JIT generate the code)."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise CompileError("llvm target: no C compiler driver ('cc') to link the shared object")
    with tempfile.TemporaryDirectory(prefix="mlacc-llvm-") as tmp:
        obj, so = Path(tmp) / "model.o", Path(tmp) / "model.so"
        source, support = Path(tmp) / "support.c", Path(tmp) / "support.so"
        source.write_text(SUPPORT_SOURCE)
        _run_cc([cc, "-shared", "-O2", "-fPIC", "-pthread", "-o", str(support), str(source)])
        try:
            engine = execution_engine.ExecutionEngine(
                module, opt_level=opt_level, shared_libs=[str(support)], enable_pic=True
            )
        except Exception as err:  # noqa: BLE001 - LLVM translation errors come as RuntimeError
            raise CompileError(f"llvm target: LLVM translation failed: {err}") from None
        for symbol in symbols:  # materializes the code (the JIT compiles lazily)
            engine.raw_lookup(symbol)
        engine.dump_to_object_file(str(obj))
        if not obj.exists():
            raise CompileError("llvm target: the JIT wrote no object file")
        # -Bsymbolic: the code calls this object's own thread pool, never a same-named
        # symbol loaded earlier into the process (the JIT's support library of a compile in
        # this process is global: set_num_threads would reach the wrong pool)
        _run_cc(
            [
                cc,
                "-shared",
                "-O2",
                "-fPIC",
                "-Wl,-Bsymbolic",
                "-o",
                str(so),
                str(obj),
                str(source),
                "-lm",
                "-pthread",
            ]
        )
        return so.read_bytes()


def _run_cc(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CompileError(f"llvm target: linking failed: {result.stderr.strip()[:300]}")
