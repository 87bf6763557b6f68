"""The module's weight table (from its `mlacc.weight` ops) and binding data to it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .dialects._mlir import ir
from .dialects.types import tensor_info
from .fp8_weights import FoldedPair, Fp8Source, bind_folded
from .runtime.errors import CompileError
from .runtime.lazy_weights import LazyWeights, WeightEntry


def weight_specs(module: ir.Module) -> dict[str, dict[str, Any]]:
    """Key -> {shape, dtype} for every `mlacc.weight` in `module`."""
    specs: dict[str, dict[str, Any]] = {}

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "mlacc.weight":
            key = ir.StringAttr(op.attributes["key"]).value
            info = tensor_info(op.results[0].type)
            spec = {"shape": list(info.shape), "dtype": info.dtype}
            if specs.setdefault(key, spec) != spec:
                raise CompileError(
                    f"weight '{key}' is used with two types: {specs[key]} and {spec}"
                )
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return specs


class WeightSource:
    """Weights that stay on disk until needed (a checkpoint folder): `bind` checks them
    against the module's table without reading data and returns a `LazyWeights`; `fp8` lists
    the weights stored in FP8 (None: none are)."""

    fp8: Fp8Source | None = None

    def bind(self, specs: dict[str, dict[str, Any]]) -> LazyWeights:
        raise NotImplementedError


@dataclass
class BoundWeights:
    """The data of a module's weights after `fold_weight_quantizations`.

    `weights`: every key the module reads (folded FP8 pairs included); `source`: the model's
    own weights they were computed from; `fp8`: what became of FP8 source weights."""

    weights: Mapping[str, torch.Tensor]
    source: Mapping[str, torch.Tensor]
    fp8: dict[str, Any] = field(default_factory=dict)


def bind_module_weights(
    given: Any,
    specs: dict[str, dict[str, Any]],
    source_specs: dict[str, dict[str, Any]],
    pairs: list[FoldedPair],
) -> BoundWeights:
    """Binds `given` (a dict, a .safetensors path or a `WeightSource`) to a module whose
    weight table is `specs` after folding `pairs`; `source_specs` is the table before."""
    if isinstance(given, (str, os.PathLike)):
        given = _load_file(given)
    folded = {k for p in pairs for k in (p.q_key, p.scale_key)}
    # weights that already have the artifact's FP8 form (an artifact's own table) are taken
    given_pairs = [p for p in pairs if _has_pair(given, p)]
    pairs = [p for p in pairs if not _has_pair(given, p)]
    needed = (set(specs) - folded) | {k for p in pairs for k in p.sources}
    source = bind_weights(given, {k: source_specs[k] for k in source_specs if k in needed})
    stored = {k: specs[k] for p in given_pairs for k in (p.q_key, p.scale_key)}
    kept = bind_weights(given, {**{k: specs[k] for k in specs if k not in folded}, **stored})
    fp8 = given.fp8 if isinstance(given, WeightSource) else None
    report = _fp8_sources(pairs, fp8)
    if isinstance(source, LazyWeights):
        return BoundWeights(_lazy_pairs(kept, source, pairs, fp8), source, report)
    return BoundWeights({**kept, **bind_folded(pairs, source, fp8)}, source, report)


def _has_pair(given: Any, pair: FoldedPair) -> bool:
    """Whether `given` holds `pair`'s two tensors in their stored dtypes."""
    if not isinstance(given, Mapping):
        return False
    for key, spec in ((pair.q_key, pair.q_spec), (pair.scale_key, pair.scale_spec)):
        if key not in given:
            return False
        dtype = given.entries[key].dtype if isinstance(given, LazyWeights) else given[key].dtype
        if str(dtype).removeprefix("torch.") != spec["dtype"]:
            return False
    return True


def _fp8_sources(pairs: list[FoldedPair], fp8: Fp8Source | None) -> dict[str, Any]:
    """How many folded pairs took FP8 source blocks as they are, and which re-quantized."""
    if fp8 is None:
        return {}
    reading = [p for p in pairs if p.reads_fp8(fp8)]
    requantized = [p.q_key for p in reading if not p.is_exact(fp8)]
    return {"from_checkpoint": len(reading) - len(requantized), "requantized": requantized}


def _lazy_pairs(
    kept: LazyWeights, source: LazyWeights, pairs: list[FoldedPair], fp8: Fp8Source | None
) -> LazyWeights:
    """`kept` plus an entry per folded tensor, computed when read (q and its scale together:
    reading one keeps the other until it is read)."""
    pending: dict[str, torch.Tensor] = {}

    def loader(pair: FoldedPair, key: str):
        def load() -> torch.Tensor:
            if key in pending:
                return pending.pop(key)
            q, scale, _ = pair.compute(source.__getitem__, fp8)
            pending.clear()
            if key == pair.q_key:
                pending[pair.scale_key] = scale
                return q
            pending[pair.q_key] = q
            return scale

        return load

    entries = dict(kept.entries)
    for pair in pairs:
        group = source.entries[pair.sources[0]].group if pair.sources else ""
        for key, spec in ((pair.q_key, pair.q_spec), (pair.scale_key, pair.scale_spec)):
            dtype = getattr(torch, spec["dtype"])
            entries[key] = WeightEntry(tuple(spec["shape"]), dtype, loader(pair, key), group)
    return LazyWeights(entries)


def bind_weights(
    weights: Any,
    specs: dict[str, dict[str, Any]],
) -> dict[str, torch.Tensor] | LazyWeights:
    """Picks the tensors `specs` needs from `weights` (a dict, a .safetensors path, a
    `LazyWeights` or a `WeightSource`), checking each one's shape and dtype; lazy sources
    stay lazy (nothing is read)."""
    if isinstance(weights, WeightSource):
        return weights.bind(specs)
    if isinstance(weights, LazyWeights):
        for key, spec in specs.items():
            if key not in weights.entries:
                raise CompileError(f"no data for weight '{key}' ({spec['dtype']}{spec['shape']})")
            entry = weights.entries[key]
            _check_spec(key, str(entry.dtype).removeprefix("torch."), list(entry.shape), spec)
        return weights.subset(specs)
    if isinstance(weights, (str, os.PathLike)):
        weights = _load_file(weights)
    weights = dict(weights or {})
    bound = {}
    for key, spec in specs.items():
        if key not in weights:
            raise CompileError(
                f"no data for weight '{key}' ({spec['dtype']}{spec['shape']}); "
                "pass weights=... or compile with timing_only=True"
            )
        tensor = weights[key]
        _check_spec(key, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), spec)
        bound[key] = tensor.detach().contiguous()
    return bound


def _load_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise CompileError(f"{path}: no such weights file")
    return load_file(str(path))


def _check_spec(key: str, dtype: str, shape: list[int], spec: dict[str, Any]) -> None:
    if shape != spec["shape"] or dtype != spec["dtype"]:
        raise CompileError(
            f"weight '{key}' is {dtype}{shape}, the module expects {spec['dtype']}{spec['shape']}"
        )


def nbytes(spec: dict[str, Any]) -> int:
    """Bytes of a tensor with `spec`'s shape and dtype."""
    n = 1
    for d in spec["shape"]:
        n *= d or 0
    return n * torch.empty((), dtype=getattr(torch, spec["dtype"])).element_size()
