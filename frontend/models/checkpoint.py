"""Loading DeepSeek-V2/V3 weights from local ``.safetensors`` files into ``DeepSeekModel``.

Accepted tensor names (both may be mixed, each weight given once):

- Hugging Face's (the published DeepSeek-V2/V3 checkpoints): ``model.embed_tokens.weight``,
  ``model.layers.{i}.self_attn.{q_a_proj,q_a_layernorm,q_b_proj,q_proj,kv_a_proj_with_mqa,
  kv_a_layernorm,kv_b_proj,o_proj}.weight``, ``...input_layernorm/post_attention_layernorm``,
  ``...mlp.{gate,up,down}_proj`` (dense), ``...mlp.gate.weight``,
  ``...mlp.gate.e_score_correction_bias``, ``...mlp.experts.{j}.{gate,up,down}_proj``,
  ``...mlp.shared_experts.*``, ``model.norm.weight``, ``lm_head.weight``; the V3 MTP layer
  at ``model.layers.{n_layers}.*`` with ``enorm``, ``hnorm``, ``eh_proj``,
  ``shared_head.norm``; its ``embed_tokens`` and ``shared_head.head`` copies are skipped
  (shared with the main model). Also transformers >= 5's in-memory layout, where the experts
  of a layer are stacked: ``mlp.experts.gate_up_proj [E, 2I, D]`` (gate rows first) and
  ``mlp.experts.down_proj [E, D, I]`` (what ``model.state_dict()`` of a transformers 5
  DeepseekV2/V3 model holds).
- the public inference code's converted names (= ours): ``embed.weight``,
  ``layers.{i}.attn.wq_a.weight``, ``layers.{i}.ffn.experts.{j}.w1.weight``,
  ``layers.{i}.ffn.gate.bias``, ``head.weight``, ...; MTP as ``mtp.0.*``. Only checkpoints
  converted for one model-parallel rank (``--model-parallel 1``) load: with more ranks the
  same name lives in several files, which is an error.

FP8: a ``float8_e4m3fn`` weight with a sibling ``<name>_scale_inv`` (Hugging Face) or
``<module>.scale`` (converted) of shape ``[ceil(N/128), ceil(K/128)]`` (fp32) is dequantized
on load, ``w * scale`` per 128x128 block, to the model's dtype.

Ignored: ``*.rotary_emb.inv_freq``, and a checkpoint's MTP layer when the model has none
(as Hugging Face does). Anything else unknown, any weight missing, or any shape mismatch is
one ``CheckpointError`` naming the keys, raised before a single weight is written.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from mlacc.runtime.errors import MlaccError

from .config import ModelConfig

FP8_BLOCK = 128
_SHOW = 5  # keys named in an error

_ATTN = {
    "self_attn.q_proj": "attn.wq",
    "self_attn.q_a_proj": "attn.wq_a",
    "self_attn.q_a_layernorm": "attn.q_norm",
    "self_attn.q_b_proj": "attn.wq_b",
    "self_attn.kv_a_proj_with_mqa": "attn.wkv_a",
    "self_attn.kv_a_layernorm": "attn.kv_norm",
    "self_attn.kv_b_proj": "attn.wkv_b",
    "self_attn.o_proj": "attn.wo",
}
_MLP = {"gate_proj": "w1", "down_proj": "w2", "up_proj": "w3"}


class CheckpointError(MlaccError, ValueError):
    """A checkpoint does not fit the model (unknown/missing keys, shapes, files, FP8 scales)."""


@dataclass
class LoadResult:
    """What ``load_checkpoint`` did: weights written, FP8 weights dequantized, keys ignored."""

    loaded: int = 0
    dequantized: int = 0
    ignored: list[str] = field(default_factory=list)


def _layer_map(config: ModelConfig, hf: str, ours: str, layer_id: int) -> dict[str, str]:
    names = {
        f"{hf}input_layernorm.weight": f"{ours}attn_norm.weight",
        f"{hf}post_attention_layernorm.weight": f"{ours}ffn_norm.weight",
    }
    q_names = ("q_a_proj", "q_a_layernorm", "q_b_proj") if config.q_lora_rank else ("q_proj",)
    for hf_name, our_name in _ATTN.items():
        if hf_name.startswith("self_attn.q_") and hf_name.split(".")[1] not in q_names:
            continue
        names[f"{hf}{hf_name}.weight"] = f"{ours}{our_name}.weight"
    if layer_id < config.n_dense_layers:
        for hf_name, our_name in _MLP.items():
            names[f"{hf}mlp.{hf_name}.weight"] = f"{ours}ffn.{our_name}.weight"
        return names
    names[f"{hf}mlp.gate.weight"] = f"{ours}ffn.gate.weight"
    if config.use_correction_bias:
        names[f"{hf}mlp.gate.e_score_correction_bias"] = f"{ours}ffn.gate.bias"
    for j in range(config.n_routed_experts):
        for hf_name, our_name in _MLP.items():
            names[f"{hf}mlp.experts.{j}.{hf_name}.weight"] = (
                f"{ours}ffn.experts.{j}.{our_name}.weight"
            )
    if config.n_shared_experts:
        for hf_name, our_name in _MLP.items():
            names[f"{hf}mlp.shared_experts.{hf_name}.weight"] = (
                f"{ours}ffn.shared_experts.{our_name}.weight"
            )
    return names


def hf_name_map(config: ModelConfig) -> dict[str, str]:
    """Hugging Face tensor name -> our parameter name, for every weight of `config`'s model."""
    names = {
        "model.embed_tokens.weight": "embed.weight",
        "model.norm.weight": "norm.weight",
        "lm_head.weight": "head.weight",
    }
    for i in range(config.n_layers):
        names.update(_layer_map(config, f"model.layers.{i}.", f"layers.{i}.", i))
    for k in range(config.n_mtp_layers):
        i = config.n_layers + k
        hf, ours = f"model.layers.{i}.", f"mtp.{k}."
        names.update(_layer_map(config, hf, ours, i))
        for part in ("enorm", "hnorm", "eh_proj"):
            names[f"{hf}{part}.weight"] = f"{ours}{part}.weight"
        names[f"{hf}shared_head.norm.weight"] = f"{ours}norm.weight"
    return names


# ------------------------------------------------------------------------------------ files


def checkpoint_files(path: str | os.PathLike[str]) -> list[Path]:
    """The ``.safetensors`` files of a checkpoint: a file, an index json, or a directory."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    index = None
    if p.is_dir():
        candidate = p / "model.safetensors.index.json"
        if candidate.exists():
            index = candidate
        else:
            files = sorted(p.glob("*.safetensors"))
            if not files:
                raise CheckpointError(f"no .safetensors files in {p}")
            return files
    elif p.name.endswith(".json"):
        index = p
    else:
        return [p]
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"unreadable checkpoint index {index}: {e}") from None
    files = [index.parent / name for name in sorted(set(weight_map.values()))]
    absent = [str(f) for f in files if not f.exists()]
    if absent:
        raise CheckpointError(f"checkpoint index {index} names missing file(s): {_few(absent)}")
    return files


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOW else "")


@dataclass(frozen=True)
class _Source:
    """Where one model weight comes from: a tensor (or one expert's rows of a stacked one)."""

    key: str
    scale_key: str | None = None
    expert: int | None = None
    rows: tuple[int, int] | None = None


def _fp8(dtype: torch.dtype | str) -> bool:
    """Whether a torch dtype or a safetensors dtype name (``F8_E4M3``) is an FP8 type."""
    return "float8" in str(dtype) or str(dtype).upper().startswith("F8")


def dequantize_fp8(
    weight: torch.Tensor, scale_inv: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``weight * scale_inv`` per 128x128 block (DeepSeek-V3's FP8 format), cast to `dtype`."""
    n, k = weight.shape
    expected = (math.ceil(n / FP8_BLOCK), math.ceil(k / FP8_BLOCK))
    if tuple(scale_inv.shape) != expected:
        raise CheckpointError(
            f"FP8 scale of shape {tuple(scale_inv.shape)} for a weight {(n, k)}: "
            f"expected {expected}"
        )
    scale = scale_inv.float().repeat_interleave(FP8_BLOCK, 0)[:n].repeat_interleave(FP8_BLOCK, 1)
    return (weight.float() * scale[:, :k]).to(dtype)


_STACKED = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)$")
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def model_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight to fill: parameters (tied ones once) and persistent buffers."""
    targets: dict[str, torch.Tensor] = dict(model.named_parameters())
    non_persistent = {
        f"{name}.{b}" if name else b
        for name, module in model.named_modules()
        for b in module._non_persistent_buffers_set
    }
    for name, buf in model.named_buffers():
        if name not in non_persistent:
            targets[name] = buf
    return targets


class CheckpointReader:
    """An open checkpoint matched against a model's weights.

    Opening reads the files' headers only: every name, shape and FP8 pairing is checked
    (`CheckpointError` naming the tensor and its file) before any data is read. Then
    `read(target)` returns one model weight (FP8 ones dequantized), `fp8(target)` the e4m3
    values and scales of an FP8 one as stored, `file_of(target)` where it lives. A context
    manager: the files stay open (memory-mapped) until it exits.
    """

    # files kept open (memory-mapped) at once: their touched pages count as the process's
    # memory, so a stream through the shards closes each one it leaves
    OPEN_FILES = 2

    def __init__(
        self, path: str | os.PathLike[str], targets: dict[str, torch.Tensor], config: ModelConfig
    ) -> None:
        self.path = path
        self.targets = targets
        self.result = LoadResult()
        self._open_files: dict[Path, Any] = {}  # least recently used first
        self._read_headers(checkpoint_files(path))
        self.plan = self._match(config)
        self._check_shapes()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the open files (reading again reopens them)."""
        while self._open_files:
            _, handle = self._open_files.popitem()
            handle.__exit__(None, None, None)

    def _read_headers(self, files: list[Path]) -> None:
        self._key_file: dict[str, Path] = {}
        self._header: dict[str, tuple[tuple[int, ...], str]] = {}  # key -> (shape, dtype)
        for f in files:
            try:
                with safe_open(str(f), framework="pt") as handle:
                    for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                        if key in self._key_file:
                            raise CheckpointError(
                                f"tensor '{key}' is in both {self._key_file[key].name} and "
                                f"{f.name} (a checkpoint split for model parallelism? convert "
                                "it for 1 rank)"
                            )
                        self._key_file[key] = f
                        sl = handle.get_slice(key)
                        self._header[key] = (tuple(sl.get_shape()), sl.get_dtype())
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001 - safetensors raises several types
                raise CheckpointError(f"cannot read {f}: {e}") from None

    def _file(self, key: str) -> Any:
        """The open safetensors handle of the file holding `key`."""
        path = self._key_file[key]
        handle = self._open_files.pop(path, None)
        if handle is None:
            if len(self._open_files) >= self.OPEN_FILES:
                oldest = next(iter(self._open_files))
                self._open_files.pop(oldest).__exit__(None, None, None)
            handle = safe_open(str(path), framework="pt").__enter__()
        self._open_files[path] = handle
        return handle

    def _shape(self, key: str) -> tuple[int, ...]:
        return self._header[key][0]

    def _dtype(self, key: str) -> str:
        return self._header[key][1]

    def _where(self, key: str) -> str:
        return f"'{key}' ({self._key_file[key].name})"

    def _match(self, config: ModelConfig) -> dict[str, _Source]:
        """Model weight -> its source; unknown or missing tensors are one error."""
        key_file, targets, result = self._key_file, self.targets, self.result
        hf_map = hf_name_map(config)
        tied = config.tie_word_embeddings
        # scales: "<w>_scale_inv" (HF) or "<module>.scale" (converted) belong to weight <w>
        scales: dict[str, str] = {}
        for key in key_file:
            if key.endswith("_scale_inv"):
                scales[key[: -len("_scale_inv")]] = key
            elif key.endswith(".scale") and key[: -len(".scale")] + ".weight" in key_file:
                scales[key[: -len(".scale")] + ".weight"] = key
        scale_keys = set(scales.values())

        mtp_in_file = {
            int(m.group(1))
            for key in key_file
            if key.endswith(".eh_proj.weight") and (m := _LAYER.match(key))
        }
        shared_mtp = {
            f"model.layers.{config.n_layers + k}.{name}"
            for k in range(config.n_mtp_layers)
            for name in ("embed_tokens.weight", "shared_head.head.weight")
        }

        plan: dict[str, _Source] = {}
        unknown: list[str] = []

        def assign(target: str, source: _Source) -> None:
            if target in plan:
                raise CheckpointError(
                    f"weight '{target}' is given twice, by {self._where(plan[target].key)} and "
                    f"{self._where(source.key)}"
                )
            plan[target] = source

        for key in key_file:
            if key in scale_keys:
                continue
            layer = _LAYER.match(key)
            if (
                key.endswith("rotary_emb.inv_freq")
                or key in shared_mtp
                or (
                    layer
                    and int(layer.group(1)) in mtp_in_file
                    and int(layer.group(1)) >= config.n_layers + config.n_mtp_layers
                )
            ):
                result.ignored.append(key)
                continue
            target = hf_map.get(key, key)
            if tied and target == "head.weight":
                result.ignored.append(key)
                continue
            if target in targets:
                assign(target, _Source(key, scales.get(key)))
                continue
            stacked = _STACKED.match(key)
            if stacked and hf_map.get(f"model.layers.{stacked.group(1)}.mlp.gate.weight"):
                gate = hf_map[f"model.layers.{stacked.group(1)}.mlp.gate.weight"]
                prefix = gate[: -len("gate.weight")]
                e, inter, dim = config.n_routed_experts, config.moe_inter_dim, config.dim
                if stacked.group(2) == "gate_up_proj":
                    expected: tuple[int, ...] = (e, 2 * inter, dim)
                    parts = {"w1": (0, inter), "w3": (inter, 2 * inter)}
                else:
                    expected, parts = (e, dim, inter), {"w2": None}
                if self._shape(key) != expected:
                    raise CheckpointError(
                        f"checkpoint tensor {self._where(key)} has shape {self._shape(key)} but "
                        f"the model expects {expected} (experts, rows, cols)"
                    )
                if key in scales:
                    raise CheckpointError(
                        f"FP8 scales for stacked experts {self._where(key)} are not supported"
                    )
                for j in range(e):
                    for part, rows in parts.items():
                        assign(f"{prefix}experts.{j}.{part}.weight", _Source(key, None, j, rows))
                continue
            unknown.append(self._where(key))
        used, ignored = {src.key for src in plan.values()}, set(result.ignored)
        for weight, scale_key in scales.items():
            if weight in ignored:
                result.ignored.append(scale_key)
            elif weight not in used:
                unknown.append(self._where(scale_key))

        missing = [t for t in targets if t not in plan]
        if unknown or missing:
            parts_msg = []
            if unknown:
                parts_msg.append(f"{len(unknown)} unknown tensor(s): {_few(unknown)}")
            if missing:
                hf_names = {ours: hf for hf, ours in hf_map.items()}
                shown = [f"{t} (HF: {hf_names[t]})" if t in hf_names else t for t in missing]
                parts_msg.append(f"{len(missing)} model weight(s) missing: {_few(shown)}")
            raise CheckpointError(
                f"checkpoint {self.path} does not fit the model: " + "; ".join(parts_msg)
            )
        return plan

    def _check_shapes(self) -> None:
        """Shapes and FP8 pairing of every planned tensor."""
        for target, src in self.plan.items():
            if src.expert is not None:
                continue
            want, have = tuple(self.targets[target].shape), self._shape(src.key)
            if have != want:
                raise CheckpointError(
                    f"checkpoint tensor {self._where(src.key)} has shape {have} but the model's "
                    f"'{target}' expects {want}"
                )
            dtype = self._dtype(src.key)
            if _fp8(dtype) and src.scale_key is None:
                raise CheckpointError(
                    f"FP8 tensor {self._where(src.key)} has no '{src.key}_scale_inv' scale "
                    "to dequantize it"
                )
            if src.scale_key is not None:
                if not _fp8(dtype):
                    raise CheckpointError(
                        f"'{src.scale_key}' scales {self._where(src.key)}, which is not FP8 "
                        f"({dtype})"
                    )
                expected = tuple(math.ceil(d / FP8_BLOCK) for d in have)
                if len(have) != 2 or self._shape(src.scale_key) != expected:
                    raise CheckpointError(
                        f"FP8 scale {self._where(src.scale_key)} has shape "
                        f"{self._shape(src.scale_key)} but the weight {have} needs {expected}"
                    )
            elif not dtype.startswith(("F", "BF")):
                raise CheckpointError(
                    f"checkpoint tensor {self._where(src.key)} is {dtype}; model weights must be "
                    "floating point (F32, F16, BF16, or F8_E4M3 with a scale)"
                )

    def file_of(self, target: str) -> Path:
        """The file that holds model weight `target`."""
        return self._key_file[self.plan[target].key]

    def read(self, target: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Model weight `target` as `dtype` (default: the model's); FP8 data dequantized."""
        src = self.plan[target]
        dtype = dtype or self.targets[target].dtype
        handle = self._file(src.key)
        if src.expert is not None:
            sl = handle.get_slice(src.key)
            t = sl[src.expert] if src.rows is None else sl[src.expert, src.rows[0] : src.rows[1]]
            return t.to(dtype)
        t = handle.get_tensor(src.key)
        if src.scale_key is not None:
            self.result.dequantized += 1
            return dequantize_fp8(t, self._tensor(src.scale_key), dtype)
        return t.to(dtype)

    def fp8(self, target: str, meta: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(e4m3 values, fp32 scale_inv) of an FP8 weight as stored (meta: shapes only, no
        data read); None for a weight stored in high precision."""
        src = self.plan[target]
        if src.scale_key is None:
            return None
        if meta:
            q_shape, s_shape = self._shape(src.key), self._shape(src.scale_key)
            return (
                torch.empty(q_shape, dtype=torch.float8_e4m3fn, device="meta"),
                torch.empty(s_shape, dtype=torch.float32, device="meta"),
            )
        q = self._tensor(src.key)
        if q.dtype != torch.float8_e4m3fn:
            raise CheckpointError(
                f"FP8 tensor {self._where(src.key)} is {q.dtype}; only float8_e4m3fn is supported"
            )
        return q, self._tensor(src.scale_key).float()

    def _tensor(self, key: str) -> torch.Tensor:
        return self._file(key).get_tensor(key)


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> LoadResult:
    """Loads `path` (a ``.safetensors`` file, a directory of shards, or an index json) into `model`.

    `model` is a ``DeepSeekModel``; its parameters may be on the meta device, in which case
    they are replaced by CPU tensors of their dtype. All names and shapes are checked before
    anything is written. Returns counts and the keys that were ignored.
    """
    targets = model_weights(model)
    with CheckpointReader(path, targets, model.config) as reader, torch.no_grad():
        for target in reader.plan:
            current = targets[target]
            value = reader.read(target)
            if current.is_meta:
                owner_name, _, leaf = target.rpartition(".")
                owner = model.get_submodule(owner_name)
                if isinstance(current, nn.Parameter):
                    owner._parameters[leaf] = nn.Parameter(
                        value, requires_grad=current.requires_grad
                    )
                else:
                    owner._buffers[leaf] = value
            else:
                current.copy_(value)
            reader.result.loaded += 1
        if model.config.tie_word_embeddings:
            model.head.weight = model.embed.weight
        return reader.result
