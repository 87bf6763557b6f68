"""Compile side of the `triton` target."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from typing import Any

from ...dialects._mlir import ir
from ...dialects.types import tensor_info
from ...runtime.errors import InputError
from ...runtime.executors.triton_sources import KERNEL_DIR, sources_digest
from ...runtime.interpreter import _random, value_refs
from ...runtime.plan import Plan, Step
from ..api import Backend, CompileRequest, Payload
from ..plan_builder import PlanBuilder, build_plan, runs_on_reference_kernels
from . import sm90 as sm90_check
from .fusion import ValueInfo, fuse_function

OPTIONS = ("fuse", "cuda_graph", "sm90_check", "sm90_budget_s", "sm90_binaries")
# Seconds the sm_90 register/spill check may spend compiling per artifact (Triton caches
# compiles on disk, so a model compiled before costs far less).
SM90_BUDGET_S = 30.0

# Oldest Triton whose language subset the kernels use (3.6: the GPU machines; 3.9: CI).
MIN_TRITON = "3.6"
# Oldest GPU: sm_80 (bf16 tensor cores); FP8 e4m3 tensor cores need sm_89.
MIN_SM, MIN_SM_FP8 = 80, 89

# torch-dialect ops that only change how a tensor is viewed (no arithmetic).
LAYOUT_OPS = frozenset(
    f"torch.aten.{name}"
    for name in (
        "view",
        "_unsafe_view",
        "reshape",
        "slice.Tensor",
        "select.int",
        "transpose.int",
        "permute",
        "unsqueeze",
        "squeeze.dim",
        "squeeze",
        "expand",
        "t",
        "contiguous",
        "alias",
        "detach",
        "split.Tensor",
        "split_with_sizes",
        "unbind.int",
        "flatten.using_ints",
        "view_as",
    )
)


class _InfoPlanBuilder(PlanBuilder):
    """PlanBuilder that also records every value's shape and dtype (for the fusions)."""

    def __init__(self) -> None:
        super().__init__()
        self.info: dict[int, ValueInfo] = {}

    def step(self, op: ir.OpView) -> Step | None:
        out = super().step(op)
        for result in op.results:
            vid = self._ids.get(result)
            t = tensor_info(result.type)
            if vid is not None and t is not None:
                self.info[vid] = ValueInfo(tuple(t.shape), t.dtype)
        return out


def kernel_sources() -> dict[str, bytes]:
    """The Triton kernel modules of the run side, by file name."""
    files = resources.files("mlacc.runtime.triton")
    return {
        f.name: f.read_bytes()
        for f in sorted(files.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".py")
    }


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return str(triton.__version__)


def fallbacks(plan: Plan, kernels: set[str]) -> list[dict[str, Any]]:
    """Every op of `plan` that runs through PyTorch: name, counts, source locations, why."""
    table: dict[str, dict[str, Any]] = {}
    for fn in plan.functions.values():
        prepared: set[int] = set()
        for step in fn.steps:
            # as the plan interpreter decides what it prepares once (runtime/interpreter.py)
            weight_only = not _random(step.op) and all(r in prepared for r in value_refs(step.args))
            if weight_only:
                prepared.update(r for r in step.results if r is not None)
            if step.op == "mlacc.weight" or step.op in kernels:
                continue
            entry = table.setdefault(
                step.op,
                {
                    "op": step.op,
                    "count": 0,
                    "per_call": 0,
                    "weight_only": 0,
                    "kind": _kind(step.op),
                    "reason": _reason(step.op),
                    "entries": [],
                    "locations": [],
                },
            )
            entry["count"] += 1
            entry["weight_only" if weight_only else "per_call"] += 1
            if fn.name not in entry["entries"]:
                entry["entries"].append(fn.name)
            if step.loc and step.loc not in entry["locations"] and len(entry["locations"]) < 5:
                entry["locations"].append(step.loc)
    return sorted(table.values(), key=lambda e: (e["per_call"] == 0, -e["per_call"], e["op"]))


def _kind(op: str) -> str:
    if op in LAYOUT_OPS:
        return "layout"
    return "compute"


def _reason(op: str) -> str:
    if op in LAYOUT_OPS:
        return "layout op: a view through PyTorch (no arithmetic)"
    if op.startswith("torch."):
        return "torch-dialect op without a Triton kernel: runs through torch.ops"
    return "no Triton kernel for this op: runs its reference semantics in PyTorch"


class TritonBackend(Backend):
    """NVIDIA GPUs through our Triton kernels; every other op through PyTorch, listed."""

    name = "triton"
    executor = "triton"
    description = "NVIDIA GPU: Triton kernels (MoE, FP8, RMSNorm, router, MLA) + host plan"

    def supports(self, op_name: str) -> bool:
        # Ops without a kernel run through PyTorch and are listed as fallbacks.
        return runs_on_reference_kernels(op_name)

    def compile(self, module: ir.Module, request: CompileRequest) -> Payload:
        unknown = sorted(set(request.options) - set(OPTIONS))
        if unknown:
            raise InputError(
                f"target 'triton' has no option '{unknown[0]}' (options: {', '.join(OPTIONS)})"
            )
        fuse = bool(request.options.get("fuse", True))
        cuda_graph = bool(request.options.get("cuda_graph", True))
        sm90 = bool(request.options.get("sm90_check", sm90_check.default_on()))
        budget = float(request.options.get("sm90_budget_s", SM90_BUDGET_S))
        keep_binaries = bool(request.options.get("sm90_binaries", True))
        from ...runtime.triton import kernel_modules, kernel_table

        kernels = set(kernel_table())
        builder = _InfoPlanBuilder()
        plan, constants = build_plan(module, builder)
        fused: Counter[str] = Counter()
        if fuse:
            for fn in plan.functions.values():
                fused += fuse_function(fn, builder.info)
        listed = fallbacks(plan, kernels)
        uses_fp8 = any(s.op.startswith("fp8.") for fn in plan.functions.values() for s in fn.steps)
        sources = kernel_sources()
        shapes = {vid: (v.shape, v.dtype) for vid, v in builder.info.items()}
        launches = Counter(
            s.op for fn in plan.functions.values() for s in fn.steps if s.op in kernels
        )
        report: dict[str, Any] = {"off": "target option sm90_check=False (or MLACC_SM90_CHECK=0)"}
        binaries, binary_files = None, {}
        if sm90:
            report, binaries, binary_files = sm90_check.check(
                plan, shapes, sources, budget_s=budget
            )
        if not keep_binaries:
            binaries, binary_files = None, {}
        manifest = {
            "triton": {
                "compiled_with": _triton_version(),
                "min_version": MIN_TRITON,
                "target": "cuda (kernels JIT-compiled at load for the GPU found, the carried "
                "sm_90 cubins used where Triton and GPU match) or the Triton interpreter "
                "(TRITON_INTERPRET=1)",
                "min_sm": MIN_SM_FP8 if uses_fp8 else MIN_SM,
                "kernel_modules": kernel_modules(),
                "kernel_sources_sha256": sources_digest(sources),
                "kernels": dict(sorted(launches.items())),
                "fused": dict(sorted(fused.items())),
                "cuda_graph": cuda_graph,
                "sm90": report,
                "binaries": binaries,
            },
            "fallbacks": listed,
        }
        if request.progress is not None:
            per_call = {
                kind: [
                    f"{e['op']} x{e['per_call']}"
                    for e in listed
                    if e["per_call"] and e["kind"] == kind
                ]
                for kind in ("compute", "layout")
            }
            request.progress(
                f"triton: {sum(launches.values())} kernel launches, "
                f"{sum(fused.values())} fusions; PyTorch per call: compute "
                + (", ".join(per_call["compute"]) or "none")
                + "; views "
                + (", ".join(per_call["layout"]) or "none")
            )
            if sm90:
                request.progress("triton " + sm90_check.summary(report, binaries))
        files = {"plan.json": json.dumps(plan.to_json()).encode()}
        files.update({f"{KERNEL_DIR}{name}": data for name, data in sources.items()})
        files.update(binary_files)
        return Payload(files=files, weights=constants, manifest=manifest)
