"""Checkpoint folders as compile inputs: Hugging Face DeepSeek-V2/V3 folders and the public
DeepSeek-V3 inference layout.

A folder holds ``config.json`` and ``.safetensors`` shards (with ``model.safetensors.index.json``
when there are several). ``config.json`` says which layout it is: Hugging Face's (``model_type``
``deepseek_v3``/``deepseek_v2``; FP8 when ``quantization_config.quant_method`` is ``fp8``) or
the public code's ``ModelArgs`` fields (``dim``, ``n_layers``, ...; FP8 when ``dtype`` is
``fp8``), whose shards carry the converted names (``convert.py --model-parallel 1``).

The model is built from the config on the meta device (mlacc's reference model, which loads
either naming) and captured without data; `CheckpointWeights` then hands the compiler each
weight on demand, read from its shard when the artifact is written, so peak memory stays near
the largest shard, not the model. A timing-only compile reads ``config.json`` alone. FP8
weights (e4m3 + ``weight_scale_inv`` per 128x128 block) reach the ``fp8`` ops as stored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .fp8_weights import Fp8Blocks, Fp8Source
from .frontend.models.checkpoint import (
    FP8_BLOCK,
    CheckpointError,
    CheckpointReader,
    checkpoint_files,
    model_weights,
)
from .frontend.models.config import ModelConfig, config_from_hf
from .runtime.errors import CompileError
from .runtime.lazy_weights import LazyWeights, WeightEntry
from .weights import WeightSource

CONFIG = "config.json"
HF_MODEL_TYPES = ("deepseek_v3", "deepseek_v2")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_PUBLIC_DTYPES = {"bf16": False, "fp8": True}  # ModelArgs.dtype -> weights stored in FP8
# ModelArgs fields that describe how the public code runs, not the model; and `gate_bias`, the
# one field mlacc adds: the router's selection bias for a model that is not 7168 wide
_PUBLIC_OTHER_FIELDS = ("max_batch_size", "dtype", "scale_fmt", "gate_bias")


@dataclass(frozen=True)
class FolderConfig:
    """What ``config.json`` says: the model, its compute dtype and whether weights are FP8."""

    config: ModelConfig
    dtype: torch.dtype
    layout: str  # "huggingface" or "public"
    fp8: bool


def is_checkpoint_dir(path: Any) -> bool:
    """Whether `path` names a directory (compile inputs that are folders are checkpoints)."""
    return isinstance(path, (str, os.PathLike)) and Path(path).is_dir()


def read_folder_config(folder: str | os.PathLike[str]) -> FolderConfig:
    """Parses the folder's ``config.json`` (see the module docstring for the two layouts)."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CompileError(f"{folder}: no {CONFIG} (not a checkpoint folder)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CompileError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise CompileError(f"{path}: expected a JSON object")
    try:
        if "model_type" in raw:
            return _hf_config(raw)
        if "dim" in raw and "n_layers" in raw:
            return _public_config(raw)
    except (ValueError, TypeError, KeyError) as err:
        raise CompileError(f"{path}: {err}") from None
    raise CompileError(
        f"{path}: neither a Hugging Face config (model_type) nor the public DeepSeek-V3 "
        "ModelArgs (dim, n_layers)"
    )


def _hf_config(raw: dict[str, Any]) -> FolderConfig:
    if raw["model_type"] not in HF_MODEL_TYPES:
        raise ValueError(
            f"model_type '{raw['model_type']}' is not a DeepSeek model "
            f"({', '.join(HF_MODEL_TYPES)})"
        )
    name = raw.get("torch_dtype") or raw.get("dtype") or "bfloat16"
    if name not in _DTYPES:
        raise ValueError(f"torch_dtype '{name}' is not supported ({', '.join(_DTYPES)})")
    quant = raw.get("quantization_config") or {}
    fp8 = quant.get("quant_method") == "fp8"
    if quant and not fp8:
        raise ValueError(f"quantization_config {quant.get('quant_method')!r} is not supported")
    if fp8:
        block = list(quant.get("weight_block_size") or [FP8_BLOCK, FP8_BLOCK])
        if block != [FP8_BLOCK, FP8_BLOCK] or quant.get("fmt", "e4m3") != "e4m3":
            raise ValueError(
                f"FP8 checkpoints with e4m3 weights in {FP8_BLOCK}x{FP8_BLOCK} blocks are "
                f"supported, not {quant.get('fmt', 'e4m3')} in {block}"
            )
    return FolderConfig(config_from_hf(raw), _DTYPES[name], "huggingface", fp8)


def _public_config(raw: dict[str, Any]) -> FolderConfig:
    dtype = raw.get("dtype", "bf16")
    if dtype not in _PUBLIC_DTYPES:
        raise ValueError(f"dtype '{dtype}' is not supported ({', '.join(_PUBLIC_DTYPES)})")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(raw) - known - set(_PUBLIC_OTHER_FIELDS))
    if unknown:
        raise ValueError(f"unknown ModelArgs field(s): {', '.join(unknown)}")
    values = {k: v for k, v in raw.items() if k in known}
    # the public Gate: a selection bias for the 7168-wide model (V3) only (unless `gate_bias`
    # says otherwise), groups ranked by
    # their top-2 sum when it has one, top-k weights renormalized for sigmoid scores
    bias = raw.get("dim") == 7168 if raw.get("gate_bias") is None else bool(raw["gate_bias"])
    values.setdefault("use_correction_bias", bias)
    values.setdefault("group_score", "top2_sum" if bias else "max")
    values.setdefault("norm_topk_prob", values.get("score_func", "softmax") == "sigmoid")
    return FolderConfig(
        ModelConfig.from_dict(values), torch.bfloat16, "public", _PUBLIC_DTYPES[dtype]
    )


def meta_model(folder: FolderConfig, *, drop_mtp: bool = False) -> torch.nn.Module:
    """mlacc's reference model for the config, on the meta device (no memory)."""
    from .frontend.models import DeepSeekModel

    config = folder.config.replace(n_mtp_layers=0) if drop_mtp else folder.config
    with torch.device("meta"):
        return DeepSeekModel(config).to(folder.dtype).eval()


def has_mtp_weights(folder: str | os.PathLike[str], config: ModelConfig) -> bool:
    """Whether the shards hold the MTP layer (read from the index or the files' headers):
    Hugging Face's ``save_pretrained`` drops it even when the config counts one."""
    from safetensors import safe_open

    marker = f"model.layers.{config.n_layers}.eh_proj.weight"
    index = Path(folder) / "model.safetensors.index.json"
    if index.is_file():
        try:
            return marker in json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError):
            return False  # the reader reports the broken index
    try:
        files = checkpoint_files(folder)
    except CheckpointError:
        return False
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            if marker in handle.keys() or "mtp.0.eh_proj.weight" in handle.keys():  # noqa: SIM118
                return True
    return False


class CheckpointWeights(WeightSource):
    """A checkpoint folder's weights, keyed as the captured module reads them.

    `parts` maps a stacked key (the routed experts of a layer) to the model weights it stacks.
    Files are opened on the first `bind` (a timing-only compile never opens them); each
    tensor is read when the artifact writer reaches it.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        model: torch.nn.Module,
        parts: dict[str, list[str]],
        fp8: bool,
    ) -> None:
        self.folder = folder
        self.model = model
        self.parts = parts
        self._reader: CheckpointReader | None = None
        self.fp8 = _CheckpointFp8(self) if fp8 else None

    @property
    def reader(self) -> CheckpointReader:
        """The open checkpoint (names, shapes and FP8 scales checked on first use)."""
        if self._reader is None:
            try:
                self._reader = CheckpointReader(
                    self.folder, model_weights(self.model), self.model.config
                )
            except CheckpointError as err:
                raise CompileError(str(err)) from None
        return self._reader

    def members(self, key: str) -> list[str]:
        """The model weights `key` is made of (itself, or the experts it stacks)."""
        return self.parts.get(key, [key])

    def bind(self, specs: dict[str, dict[str, Any]]) -> LazyWeights:
        reader = self.reader
        entries = {}
        for key, spec in specs.items():
            members = self.members(key)
            absent = [m for m in members if m not in reader.plan]
            if absent:
                raise CompileError(f"{self.folder}: no tensor for weight '{absent[0]}'")
            dtype = getattr(torch, spec["dtype"])
            one = tuple(reader.targets[members[0]].shape)
            shape = (len(members), *one) if key in self.parts else one
            if list(shape) != spec["shape"]:
                raise CompileError(
                    f"weight '{key}' ({reader.file_of(members[0]).name}) is {list(shape)}, "
                    f"the module expects {spec['shape']}"
                )
            entries[key] = WeightEntry(
                shape, dtype, self._loader(key, dtype), reader.file_of(members[0]).name
            )
        return LazyWeights(entries)

    def _loader(self, key: str, dtype: torch.dtype):
        def load() -> torch.Tensor:
            tensors = [self.reader.read(m, dtype) for m in self.members(key)]
            return torch.stack(tensors) if key in self.parts else tensors[0]

        return load


class _CheckpointFp8(Fp8Source):
    """The FP8 weights of a `CheckpointWeights` (a stacked key: when all its experts are)."""

    def __init__(self, weights: CheckpointWeights) -> None:
        self.weights = weights

    def blocks(self, key: str) -> Fp8Blocks | None:
        return self._blocks(key, meta=False)

    def meta(self, key: str) -> Fp8Blocks | None:
        return self._blocks(key, meta=True)

    def _blocks(self, key: str, meta: bool) -> Fp8Blocks | None:
        reader = self.weights.reader
        members = self.weights.members(key)
        if any(m not in reader.plan for m in members):
            return None
        stored = [reader.fp8(m, meta=meta) for m in members]
        if any(s is None for s in stored):
            return None
        dtype = reader.targets[members[0]].dtype
        if key not in self.weights.parts:
            q, scale = stored[0]
            return Fp8Blocks(q, scale, FP8_BLOCK, dtype)
        q = torch.stack([s[0] for s in stored])
        scale = torch.stack([s[1] for s in stored])
        return Fp8Blocks(q, scale, FP8_BLOCK, dtype)
