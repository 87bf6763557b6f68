"""`mlacc.compile`: input → graph-level MLIR → pipeline → target payload → `Artifact`."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import torch

from .version import __version__

DEFAULT_PIPELINE = "canonicalize,cse"
PIPELINES = {"default": DEFAULT_PIPELINE, "none": ""}


def compile(
    model: Any,
    args: tuple | None = None,
    kwargs: dict | None = None,
    *,
    target: str = "sim",
    pipeline: str = "default",
    fp8: bool = False,
    weights: dict[str, torch.Tensor] | str | os.PathLike[str] | None = None,
    timing_only: bool = False,
    print_ir_after_all: str | os.PathLike[str] | None = None,
    repro_dir: str | os.PathLike[str] | None = None,
    **options: Any,
):
    """Compiles `model` for `target` and returns an `Artifact` (`.save(path)`, `.load()`).

    Args:
        model: an `.mlir` file path, MLIR text, or an `ir.Module` at the mla/moe level.
        args, kwargs: example inputs (used by model capture; optional for MLIR input).
        target: a registered target name (`mlacc backends` lists them).
        pipeline: "default", "none", or a textual pipeline ("canonicalize,cse").
        fp8: add FP8 block quantization to the pipeline.
        weights: tensors (or a .safetensors path) for the module's `mlacc.weight` keys.
        timing_only: compile without weight data (shapes only).
        print_ir_after_all: a directory that receives the IR after every pipeline step.
        repro_dir: where a failing step's reproducer goes (default: the working directory).
        **options: target options, passed to the backend.
    """
    from .backends import CompileRequest, get_backend
    from .backends.support import check_supported
    from .dialects import make_context
    from .runtime.artifact import FORMAT, FORMAT_VERSION, Artifact
    from .runtime.errors import CompileError

    backend = get_backend(target)
    ctx = make_context()
    with ctx:
        module, source = _import(model, args, kwargs)
        pipeline_text = _pipeline_text(pipeline, fp8)
        if pipeline_text:
            from .passes.pipeline import run_pipeline

            run_pipeline(
                module,
                pipeline_text,
                print_ir_after_all=print_ir_after_all,
                repro_dir=Path(repro_dir) if repro_dir else Path.cwd(),
                source_name=source,
            )
        check_supported(backend, module)
        weight_specs = _weight_specs(module)
        bound = {} if timing_only else _bind_weights(weights, weight_specs, CompileError)
        payload = backend.compile(module, CompileRequest(weights=bound, options=dict(options)))
        entry_points = _entry_points(module)
        mlir_text = str(module)
    all_weights = {**bound, **payload.weights}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlacc_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "target": target,
        "executor": backend.executor,
        "pipeline": pipeline_text,
        "default_entry": "forward" if "forward" in entry_points else next(iter(entry_points)),
        "entry_points": entry_points,
        "weights": {
            "present": not timing_only,
            "count": len(weight_specs),
            "bytes": sum(_nbytes(s) for s in weight_specs.values()),
            "tensors": weight_specs,
        },
        "payload": sorted(payload.files),
        "backend": payload.manifest,
    }
    return Artifact(manifest=manifest, mlir=mlir_text, weights=all_weights, payload=payload.files)


def _import(model: Any, args: Any, kwargs: Any):
    from .dialects._mlir import ir
    from .runtime.errors import CompileError

    if isinstance(model, ir.Module):
        return ir.Module.parse(str(model)), "<module>"
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".mlir"):
        path = Path(model)
        if not path.is_file():
            raise CompileError(f"{path}: no such file")
        return _parse(path.read_text(), str(path)), str(path)
    if isinstance(model, str) and ("func.func" in model or "module" in model):
        return _parse(model, "<string>"), "<string>"
    raise CompileError(
        f"cannot compile a {type(model).__name__}: expected an .mlir path, MLIR text or an "
        "ir.Module (PyTorch model capture is the frontend's job, not built yet)"
    )


def _parse(text: str, source_name: str):
    from .dialects._mlir import ir
    from .dialects.locations import format_location
    from .dialects.parsing import parse_module
    from .runtime.errors import CompileError

    try:
        return parse_module(text, source_name)
    except ir.MLIRError as err:
        diag = err.error_diagnostics[0] if err.error_diagnostics else None
        if diag is None:
            raise CompileError(f"{source_name}: invalid MLIR") from None
        raise CompileError(f"{format_location(diag.location)}: {diag.message}") from None


def _pipeline_text(pipeline: str, fp8: bool) -> str:
    text = PIPELINES.get(pipeline, pipeline)
    if fp8:
        text = ",".join(p for p in (text, "quantize-fp8") if p)
    return text


def _weight_specs(module) -> dict[str, dict[str, Any]]:
    from .dialects.types import tensor_info

    specs: dict[str, dict[str, Any]] = {}

    def visit(op):
        from .dialects._mlir import ir

        if op.name == "mlacc.weight":
            key = ir.StringAttr(op.attributes["key"]).value
            info = tensor_info(op.results[0].type)
            specs[key] = {"shape": list(info.shape), "dtype": info.dtype}
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return specs


def _bind_weights(weights, specs, error_cls) -> dict[str, torch.Tensor]:
    if isinstance(weights, (str, os.PathLike)):
        from safetensors.torch import load_file

        weights = load_file(str(weights))
    weights = dict(weights or {})
    bound = {}
    for key, spec in specs.items():
        if key not in weights:
            raise error_cls(
                f"no data for weight '{key}' ({spec['dtype']}{spec['shape']}); "
                "pass weights=... or compile with timing_only=True"
            )
        tensor = weights[key]
        dtype = str(tensor.dtype).removeprefix("torch.")
        if list(tensor.shape) != spec["shape"] or dtype != spec["dtype"]:
            raise error_cls(
                f"weight '{key}' is {dtype}{list(tensor.shape)}, the module expects "
                f"{spec['dtype']}{spec['shape']}"
            )
        bound[key] = tensor.detach().contiguous()
    return bound


def _entry_points(module) -> dict[str, Any]:
    from .backends.plan_builder import entry_functions, spec_of
    from .dialects._mlir import ir

    out = {}
    for f in entry_functions(module):
        name = ir.StringAttr(f.attributes["sym_name"]).value
        f_type = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value)
        out[name] = {
            "inputs": [_spec_json(spec_of(t), f"arg{i}") for i, t in enumerate(f_type.inputs)],
            "outputs": [_spec_json(spec_of(t), f"out{i}") for i, t in enumerate(f_type.results)],
        }
    return out


def _spec_json(spec, name: str) -> dict[str, Any] | None:
    return None if spec is None else {"name": name, "shape": spec.shape, "dtype": spec.dtype}


def _nbytes(spec: dict[str, Any]) -> int:
    n = 1
    for d in spec["shape"]:
        n *= d or 0
    return n * torch.empty((), dtype=getattr(torch, spec["dtype"])).element_size()
