"""Compile side of the `llvm` target: graph IR -> prepared weights + native shared object."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from mlacc.backends import Backend, CompileRequest, Payload
from mlacc.dialects._mlir import ir
from mlacc.passes.registry import PassError
from mlacc.runtime.errors import CompileError, InputError
from mlacc.runtime.llvm import host_cpu

from . import codegen
from .lowering import lower_module
from .ops import lowerings
from .prepare import prepare_weights

FREE_OPS = frozenset({"mlacc.weight"})


@dataclass(frozen=True)
class LLVMOptions:
    """Target options (``mlacc.compile(..., target="llvm", opt_level=3)``)."""

    opt_level: int = 3
    vectorize: bool = True
    # 0: as many threads as the running process may use (default); 1: single-threaded code;
    # n > 1: n threads by default. The run side can override it (MLACC_LLVM_THREADS).
    threads: int = 0

    def __post_init__(self) -> None:
        if self.opt_level not in (0, 1, 2, 3):
            raise InputError(f"target 'llvm' option 'opt_level' must be 0-3, got {self.opt_level}")
        if not isinstance(self.vectorize, bool):
            raise InputError("target 'llvm' option 'vectorize' must be true or false")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise InputError(
                f"target 'llvm' option 'threads' must be an integer >= 0, got {self.threads!r}"
            )


class LLVMBackend(Backend):
    """CPU code generation through upstream MLIR: linalg -> tiled/vectorized -> LLVM -> .so."""

    name = "llvm"
    executor = "llvm"
    description = "CPU: linalg -> tiled + vectorized -> LLVM, ahead-of-time shared object"

    def supports(self, op_name: str) -> bool:
        if op_name in lowerings() or op_name in FREE_OPS:
            return True
        # torch ops go through torch-mlir's conversions; an opaque torch.operator never does
        return op_name.startswith("torch.") and op_name != "torch.operator"

    def compile(self, module: ir.Module, request: CompileRequest) -> Payload:
        unknown = sorted(set(request.options) - {"opt_level", "vectorize", "threads"})
        if unknown:
            raise InputError(
                f"target 'llvm' has no option '{unknown[0]}' (options: opt_level, vectorize, "
                "threads)"
            )
        options = LLVMOptions(**request.options)
        say = request.progress or (lambda _line: None)
        work = ir.Module.parse(
            module.operation.get_asm(enable_debug_info=True), context=module.context
        )
        t0 = time.perf_counter()
        prepared = prepare_weights(work, request.weights)
        say(f"llvm: {len(prepared)} prepared weight(s) in {time.perf_counter() - t0:.1f}s")
        try:
            lower_module(work.operation)
        except PassError as err:
            error = CompileError(str(err))
            error.op = err.op
            raise error from None
        except ir.MLIRError as err:
            raise CompileError(f"llvm target: lowering torch ops failed: {_first(err)}") from None
        lowered_text = str(work)
        t1 = time.perf_counter()
        say(f"llvm: lowered to linalg in {t1 - t0:.1f}s")
        if options.vectorize:
            codegen.schedule(work, threads=options.threads != 1)
        abis = codegen.bufferize(work)
        codegen.to_llvm(work)
        say(f"llvm: bufferized and lowered to LLVM in {time.perf_counter() - t1:.1f}s")
        t1 = time.perf_counter()
        blob = codegen.link(work, [a.symbol for a in abis.values()], options.opt_level)
        say(f"llvm: native code {len(blob) / 1024:.0f} KiB in {time.perf_counter() - t1:.1f}s")
        reads = {w["key"] for a in abis.values() for w in a.to_json()["weights"]}
        cpu = host_cpu()
        abi = {
            "cpu": cpu,
            "threads": options.threads,
            "entry_points": {n: a.to_json() for n, a in abis.items()},
        }
        return Payload(
            files={
                "model.so": blob,
                "llvm.json": json.dumps(abi, indent=1).encode(),
                "linalg.mlir": lowered_text.encode(),
            },
            weights={k: v for k, v in prepared.items() if k in reads},
            reads_weights=frozenset(reads),
            manifest={
                "cpu": cpu,
                "opt_level": options.opt_level,
                "vectorize": options.vectorize,
                "threads": options.threads,
            },
        )


def _first(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:2])
