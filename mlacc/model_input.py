"""Turns what users pass to `mlacc.compile` / `mlacc.capture` into a graph-level MLIR module.

Accepted: an ``nn.Module`` (captured by the frontend's adapters), a built-in model name such
as ``deepseek-v3-tiny``, a checkpoint folder (`checkpoint_dir`), a ``.pt2`` file or an
``ExportedProgram`` (imported as traced), an ``.mlir`` file, MLIR text, or an ``ir.Module``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dialects._mlir import ir
from .dialects.parsing import SourceError, parse_module
from .runtime.errors import CompileError
from .safe_pt2 import load_exported_program


@dataclass
class ImportedModel:
    """A module plus what came with it: the model's weights and its entry-point calling info."""

    module: ir.Module
    source: str
    # key -> tensor, or a checkpoint's `WeightSource` (None: weights come from the user)
    weights: Any = None
    on_meta: bool = False  # the model holds no data (timing-only compiles only)
    entry_points: dict[str, Any] = field(default_factory=dict)  # name -> frontend EntryPoint
    cache: dict[str, Any] | None = None
    family: str = ""
    fp8: bool = False  # the weights are stored in FP8 (a DeepSeek-V3 FP8 checkpoint)
    fp8_block: int | None = None  # their block size
    parts: dict[str, list[str]] = field(default_factory=dict)  # stacked key -> the model's keys


def import_model(
    model: Any,
    args: Any,
    kwargs: Any,
    *,
    cache_len: int | None = None,
    cache_block_size: int | None = None,
    progress: Any = None,
    timing_only: bool = False,
) -> ImportedModel:
    """Imports `model` into the current context (see the module docstring for what it takes);
    `timing_only`: no weight data will be read (a checkpoint folder's shards stay closed)."""
    import torch

    cache = {"cache_len": cache_len, "cache_block_size": cache_block_size}
    if isinstance(model, ir.Module):
        return ImportedModel(parse_mlir(str(model), "<module>"), "<module>")
    if isinstance(model, (str, os.PathLike)):
        text = str(model)
        if os.path.isdir(text):
            return _import_folder(text, args, kwargs, cache, progress, timing_only)
        if text.endswith(".mlir"):
            path = _existing(text)
            return ImportedModel(parse_mlir(path.read_text(), str(path)), str(path))
        if text.endswith(".pt2"):
            from .frontend import custom_ops  # noqa: F401 - registers mlacc:: ops for loading

            program = load_exported_program(_existing(text))
            return _import_program(program, str(text), progress)
        if isinstance(model, str) and ("func.func" in model or "module" in model):
            return ImportedModel(parse_mlir(model, "<string>"), "<string>")
        from .frontend.models import CONFIGS

        if text in CONFIGS:
            return _import_module(builtin_model(text), args, kwargs, text, cache, progress)
        raise CompileError(
            f"'{text}' is not a checkpoint folder, a file (.mlir, .pt2) or a built-in model "
            f"({', '.join(sorted(CONFIGS))})"
        )
    if isinstance(model, torch.export.ExportedProgram):
        return _import_program(model, "<ExportedProgram>", progress)
    if isinstance(model, torch.nn.Module):
        return _import_module(model, args, kwargs, type(model).__name__, cache, progress)
    raise CompileError(
        f"cannot compile a {type(model).__name__}: expected an nn.Module, an "
        "ExportedProgram, a .pt2/.mlir path, a built-in model name or MLIR"
    )


def builtin_model(name: str, *, meta: bool | None = None, seed: int = 0):
    """A built-in reference model: random weights, or on the meta device for full-size configs
    (and whenever `meta` is True)."""
    import torch

    from .frontend.models import DeepSeekModel, get_config

    config = get_config(name)
    if meta is None:
        meta = not name.endswith("-tiny")
    if meta:  # full-size configs: bf16, like the released checkpoints (meta: no memory)
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)  # built in bf16: no conversion pass over 46k
        try:  # tensors; the routing bias stays fp32, as in the released checkpoints
            with torch.device("meta"):
                return DeepSeekModel(config).eval()
        finally:
            torch.set_default_dtype(default)
    torch.manual_seed(seed)
    model = DeepSeekModel(config).eval()
    model.init_weights(seed)
    return model


def default_args(model: Any) -> tuple:
    """Example inputs for a causal LM: one sequence of 16 tokens (on the model's device)."""
    import torch

    device = next(model.parameters()).device
    return (torch.zeros(1, 16, dtype=torch.int64, device=device),)


def check_runnable(module: ir.Module) -> None:
    """Raises CaptureError naming the first op (and its source line) that no installed target
    can run, so it is reported at capture, not several passes later."""
    from .backends.registry import targets_supporting
    from .backends.support import STRUCTURAL_OPS
    from .dialects.locations import format_location
    from .frontend.errors import CaptureError

    verdicts: dict[str, bool] = {}
    bad: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name not in STRUCTURAL_OPS:
            if op.name not in verdicts:
                verdicts[op.name] = bool(targets_supporting(op.name))
            if not verdicts[op.name]:
                bad.append(op)
                return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if bad:
        where = format_location(bad[0].location) or "<unknown location>"
        raise CaptureError(
            f"{where}: op '{bad[0].name}' was captured but no installed target can run it"
        )


def _import_module(model, args, kwargs, source, cache, progress) -> ImportedModel:
    from .frontend.capture import capture

    args = tuple(args) if args is not None else default_args(model)
    captured = capture(model, args, kwargs, context=ir.Context.current, progress=progress, **cache)
    check_runnable(captured.module)
    on_meta = any(t.is_meta for t in captured.weights.values())
    return ImportedModel(
        captured.module,
        source,
        weights=None if on_meta else captured.weights,
        on_meta=on_meta,
        entry_points=captured.entry_points,
        cache=captured.cache,
        family=captured.family,
        parts=captured.parts,
    )


def _import_folder(folder: str, args, kwargs, cache, progress, timing_only: bool) -> ImportedModel:
    from .checkpoint_dir import CheckpointWeights, has_mtp_weights, meta_model, read_folder_config
    from .frontend.models.checkpoint import FP8_BLOCK

    described = read_folder_config(folder)
    config = described.config
    drop_mtp = bool(config.n_mtp_layers) and not timing_only and not has_mtp_weights(folder, config)
    model = meta_model(described, drop_mtp=drop_mtp)
    if args is None:  # on the CPU: the graph creates its positions on the example's device
        import torch

        args = (torch.zeros(1, 16, dtype=torch.int64),)
    imported = _import_module(model, args, kwargs, folder, cache, progress)
    imported.family = f"{imported.family} ({described.layout} checkpoint)"
    imported.fp8, imported.fp8_block = described.fp8, FP8_BLOCK if described.fp8 else None
    if not timing_only:
        imported.weights = CheckpointWeights(folder, model, imported.parts, described.fp8)
        imported.on_meta = False
    return imported


def _import_program(program, source: str, progress) -> ImportedModel:
    from .frontend.capture import import_exported_program

    captured = import_exported_program(program, context=ir.Context.current, progress=progress)
    check_runnable(captured.module)
    state = {**program.state_dict, **getattr(program, "constants", {})}
    on_meta = any(getattr(t, "is_meta", False) for t in state.values())
    return ImportedModel(
        captured.module,
        source,
        weights=None if on_meta else state,
        on_meta=on_meta,
        entry_points=captured.entry_points,
    )


def _existing(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise CompileError(f"{path}: no such file")
    return path


def parse_mlir(text: str, source_name: str) -> ir.Module:
    """Parses and verifies MLIR text; the first diagnostic becomes a CompileError line."""
    try:
        return parse_module(text, source_name)
    except SourceError as err:
        errors = [d for d in err.diagnostics if d.severity == "error"] or err.diagnostics
        if not errors:
            raise CompileError(f"{source_name}: invalid MLIR") from None
        raise CompileError(f"{errors[0].location or source_name}: {errors[0].message}") from None


def capture(model: Any, args: Any = None, kwargs: Any = None, **options: Any) -> ir.Module:
    """The model as imported MLIR at the mla/moe level, before any pass (``str()`` of it is
    MLIR text; `module_text` prints it with source locations). Takes what `mlacc.compile` takes."""
    from .dialects import make_context

    with make_context():
        return import_model(
            model,
            args,
            kwargs,
            cache_len=options.get("cache_len"),
            cache_block_size=options.get("cache_block_size"),
            progress=options.get("progress"),
        ).module
