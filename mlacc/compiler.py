"""`mlacc.compile`: input → graph-level MLIR → pipeline → target payload → `Artifact`."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .version import __version__

DEFAULT_PIPELINE = "mla-absorb-weights,mla-fuse-rope,moe-group-experts,canonicalize,cse"
PIPELINES = {"default": DEFAULT_PIPELINE, "none": ""}


def compile(  # noqa: A001 - the public name is fixed by the contract
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
    cache_len: int | None = None,
    cache_block_size: int | None = None,
    progress: Callable[[str], None] | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
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
        cache_len: tokens the latent KV cache of prefill/decode holds per sequence (causal
            LMs; the example call's batch is the largest batch served, its length the
            prefill chunk).
        cache_block_size: page the latent cache in blocks of this many tokens (a block
            table per sequence); None keeps one contiguous buffer per layer.
        progress: called with a line per capture stage (long captures show progress).
        tokenizer: a tokenizer folder (``tokenizer.json``, ``save_pretrained``) to embed in the
            artifact for `mlacc generate`; a checkpoint folder's own is embedded by default.
        **options: target options, passed to the backend.
    """
    from .backends import CompileRequest, get_backend
    from .backends.support import check_supported
    from .dialects import make_context
    from .dialects.parsing import module_text
    from .fp8_weights import fold_weight_quantizations
    from .model_input import import_model
    from .report import memory_report
    from .runtime.artifact import Artifact
    from .runtime.errors import CompileError
    from .weights import BoundWeights, bind_module_weights, weight_specs

    backend = get_backend(target)
    repro = Path(repro_dir) if repro_dir else Path.cwd()
    tokenizer_files = _tokenizer_files(model, tokenizer)
    with make_context():
        imported = import_model(
            model,
            args,
            kwargs,
            cache_len=cache_len,
            cache_block_size=cache_block_size,
            progress=progress,
            timing_only=timing_only,
        )
        module, source = imported.module, imported.source
        if imported.on_meta and not timing_only:
            raise CompileError(
                f"{source} has no weight data (it is on the meta device); "
                "compile it with timing_only=True"
            )
        fp8 = fp8 or imported.fp8
        pipeline_text = _with_target_options(
            _pipeline_text(pipeline, fp8, imported.fp8_block), backend.pass_options(dict(options))
        )
        unquantized = module_text(module) if fp8 and not timing_only else None
        _run_pipeline(module, pipeline_text, source, print_ir_after_all, repro)
        source_specs = weight_specs(module)
        pairs = fold_weight_quantizations(module)
        check_supported(backend, module)
        specs = weight_specs(module)
        given = weights if weights is not None else imported.weights
        bound = (
            BoundWeights({}, {})
            if timing_only
            else bind_module_weights(given, specs, source_specs, pairs)
        )
        request = CompileRequest(weights=bound.weights, options=dict(options), progress=progress)
        payload = _lower(backend, module, request, repro)
        entry_points = _entry_points(module, imported.entry_points)
        memory = memory_report(module)
        mlir_text = module_text(module)
    manifest = _manifest(source, backend, pipeline_text, entry_points, specs, timing_only, payload)
    manifest["memory"] = memory.to_json()
    if imported.cache:
        manifest["kv_cache"] = imported.cache
    if imported.family:
        manifest["model_family"] = imported.family
    if pairs:
        manifest["fp8_weights"] = {"folded": len(pairs), **bound.fp8}
    if unquantized is not None:
        manifest["fp8_report"] = _fp8_report(unquantized, given, bound, pipeline, pipeline_text)
    if tokenizer_files:
        manifest["tokenizer"] = sorted(tokenizer_files)
    return Artifact(
        manifest=manifest,
        mlir=mlir_text,
        weights=_stored(bound.weights, payload.reads_weights, payload.weights),
        payload=payload.files,
        tokenizer=tokenizer_files,
    )


def _tokenizer_files(model: Any, tokenizer: str | os.PathLike[str] | None) -> dict[str, bytes]:
    """The tokenizer files to embed: `tokenizer`'s, else a checkpoint folder's own (if any).
    Embedded files must load, so a broken tokenizer fails the compile, not a later run."""
    import importlib.util

    from .runtime.text import TOKENIZER_FILE, tokenizer_files, tokenizer_from_files

    if tokenizer is None:
        if not isinstance(model, (str, os.PathLike)):
            return {}
        try:  # `model` may be MLIR text: no such file, or a name too long for one
            if not (Path(model) / TOKENIZER_FILE).is_file():
                return {}
        except (OSError, ValueError):
            return {}
        tokenizer = model
    files = tokenizer_files(tokenizer)
    if importlib.util.find_spec("tokenizers") is not None:
        tokenizer_from_files(files, str(tokenizer))
    return files


# A streamed checkpoint larger than this gets no FP8 accuracy report: the report runs the model
# twice on the reference target, with every weight in memory.
FP8_REPORT_MAX_BYTES = 2**30


def _fp8_report(unquantized: str, given: Any, bound: Any, pipeline: str, fp8_pipeline: str):
    """The FP8 accuracy report (`fp8_report.fp8_accuracy`), or why there is none."""
    from .fp8_report import fp8_accuracy
    from .runtime.lazy_weights import LazyWeights
    from .weights import WeightSource

    source = given if isinstance(given, WeightSource) else bound.source
    if isinstance(bound.source, LazyWeights) and bound.source.nbytes > FP8_REPORT_MAX_BYTES:
        size = bound.source.nbytes / 2**30
        return {"skipped": f"streamed checkpoint of {size:.1f} GiB (the report holds it in memory)"}
    report = fp8_accuracy(
        unquantized, source, pipeline=_pipeline_text(pipeline, False), fp8_pipeline=fp8_pipeline
    )
    return report if report is not None else {"skipped": "no forward entry point"}


def _stored(weights: Mapping, reads: frozenset[str] | None, extra: dict) -> Mapping:
    """The weights the artifact keeps: the model weights the target's payload reads, and the
    payload's own (lazy weights stay lazy)."""
    from .runtime.lazy_weights import LazyWeights

    if isinstance(weights, LazyWeights):
        kept = weights if reads is None else weights.subset(reads)
        return kept.merged(extra)
    kept = dict(weights) if reads is None else {k: v for k, v in weights.items() if k in reads}
    return {**kept, **extra}


def _pipeline_text(pipeline: str, fp8: bool, block: int | None = None) -> str:
    text = PIPELINES.get(pipeline, pipeline)
    if fp8:
        quantize = (
            "quantize-fp8" if block in (None, 128) else f"quantize-fp8{{weight-block={block}}}"
        )
        text = ",".join(p for p in (text, quantize) if p)
    return text


def _with_target_options(text: str, defaults: dict[str, dict[str, Any]]) -> str:
    """`text` (a bare pass list) with the target's option `defaults` added to the passes they
    name, except options the text already sets."""
    if not defaults or not text or text.lstrip().startswith("builtin.module"):
        return text
    from .passes.pipeline import split_top_level

    out = []
    for element in split_top_level(text, ","):
        name = element.strip().split("{", 1)[0].split("(", 1)[0].strip()
        extra = defaults.get(name)
        if extra:
            given = element.strip()[len(name) :]
            inner = given[1 : given.index("}")] if given.startswith("{") else ""
            rest = given[len(inner) + 2 :] if given.startswith("{") else given
            given_keys = inner.replace(",", " ").split()
            keys = {item.partition("=")[0].strip().replace("_", "-") for item in given_keys}
            added = [f"{k}={v}" for k, v in extra.items() if k.replace("_", "-") not in keys]
            element = f"{name}{{{' '.join([inner, *added]).strip()}}}{rest}"
        out.append(element)
    return ",".join(out)


def _run_pipeline(module, text: str, source: str, print_ir_after_all, repro: Path) -> None:
    if not text:
        return
    from .passes.pipeline import PipelineError, PipelineParseError, run_pipeline
    from .runtime.errors import CompileError

    try:
        run_pipeline(
            module, text, print_ir_after_all=print_ir_after_all, repro_dir=repro, source_name=source
        )
    except PipelineError as err:
        notes = "".join(f"\nnote: {n}" for n in err.notes)
        raise CompileError(f"{err.location}: {err.message}{notes}") from None
    except PipelineParseError as err:
        raise CompileError(f"bad pipeline '{text}': {err}") from None


def _lower(backend, module, request, repro: Path):
    """Runs the backend; on failure writes the IR it was given and names the reproducer."""
    from .dialects.locations import format_location
    from .dialects.parsing import module_text
    from .fileio import write_atomic
    from .runtime.errors import CompileError, InputError, MlaccError, UnsupportedOpError

    before = module_text(module)
    try:
        return backend.compile(module, request)
    except (UnsupportedOpError, InputError):  # the input's fault: no reproducer to write
        raise
    except Exception as err:
        path = repro / f"mlacc-repro-{backend.name}-lowering.mlir"
        write_atomic(path, before)
        op = getattr(err, "op", None)
        where = f"{format_location(op.location)}: " if op is not None else ""
        kind = "" if isinstance(err, MlaccError) else f"{type(err).__name__}: "
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        command = f"mlacc compile {path} --target {backend.name} --pipeline none -o repro.mlacc"
        raise CompileError(
            f"{where}lowering to '{backend.name}' failed: {kind}{message}\n"
            f"note: the IR given to the '{backend.name}' backend is in {path}\n"
            f"note: reproduce with: {command}"
        ) from err


def _entry_points(module, frontend_info: dict[str, Any]) -> dict[str, Any]:
    from .backends.plan_builder import entry_functions, spec_of
    from .dialects._mlir import ir

    out = {}
    for f in entry_functions(module):
        name = ir.StringAttr(f.attributes["sym_name"]).value
        f_type = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value)
        info = frontend_info.get(name)
        names = info.input_names if info else []
        inputs = [
            _spec_json(spec_of(t), names[i] if i < len(names) else f"arg{i}")
            for i, t in enumerate(f_type.inputs)
        ]
        out[name] = {
            "inputs": inputs,
            "outputs": [_spec_json(spec_of(t), f"out{i}") for i, t in enumerate(f_type.results)],
        }
        if info and info.in_spec:
            out[name]["in_spec"] = info.in_spec
        if info and info.out_spec:
            out[name]["out_spec"] = info.out_spec
        if info and info.constants:
            out[name]["constants"] = info.constants
        if info and info.roles:
            out[name]["roles"] = info.roles
    return out


def _spec_json(spec, name: str) -> dict[str, Any] | None:
    return None if spec is None else {"name": name, "shape": spec.shape, "dtype": spec.dtype}


def _manifest(source, backend, pipeline_text, entry_points, specs, timing_only, payload) -> dict:
    from .runtime.artifact import FORMAT, FORMAT_VERSION
    from .runtime.errors import CompileError
    from .weights import nbytes

    if not entry_points:
        raise CompileError(f"{source}: the module has no public function to compile")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlacc_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source": source,
        "target": backend.name,
        "executor": backend.executor,
        "pipeline": pipeline_text,
        "default_entry": "forward" if "forward" in entry_points else next(iter(entry_points)),
        "entry_points": entry_points,
        "weights": {
            "present": not timing_only,
            "count": len(specs),
            "bytes": sum(nbytes(s) for s in specs.values()),
            "tensors": specs,
        },
        "payload": sorted(payload.files),
        "backend": payload.manifest,
    }
