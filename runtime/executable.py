"""`Executable`: a loaded artifact that runs like the model it was compiled from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from .artifact import Artifact
from .errors import ArtifactError, InputError
from .executors import get_executor
from .validate import TENSOR_DTYPES

_DTYPES = {name: getattr(torch, name) for name in TENSOR_DTYPES}


class Executable:
    """Calls the compiled entry points: ``exe(*args, **kwargs)`` runs the default one (the
    model's ``forward``), ``exe.run(name, ...)`` or ``exe.<name>(...)`` any other one."""

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self.manifest = artifact.manifest
        self.entry_points: dict[str, dict[str, Any]] = artifact.manifest["entry_points"]
        if not self.entry_points:
            raise ArtifactError("artifact has no entry points")
        self.executor = get_executor(artifact.manifest["executor"])(artifact)
        self.last_generation: Any = None  # GenerationStats of the last `generate`

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def default_entry(self) -> str:
        return self.manifest.get("default_entry") or next(iter(self.entry_points))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(self.default_entry, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        entry_points = self.__dict__.get("entry_points", {})
        if name in entry_points:
            return lambda *args, **kwargs: self.run(name, *args, **kwargs)
        raise AttributeError(name)

    def generate(
        self,
        ids: torch.Tensor,
        max_new_tokens: int | list[int],
        *,
        attention_mask: torch.Tensor | None = None,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop_tokens: list[int] | tuple[int, ...] = (),
        pad_token_id: int = 0,
        cache: Any = None,
        speculative: str | None = None,
        on_token: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Chunked prefill + decode over the runtime-owned latent KV cache.

        Greedy unless `temperature` > 0 (then top-k / top-p sampling, reproducible with
        `seed`). `attention_mask` (left or right padding) marks each row's real tokens; a row
        ends at a token of `stop_tokens` or after its `max_new_tokens` (an int or one per
        row) and is padded with `pad_token_id`. `cache` (from `new_cache()`) reuses buffers.
        ``speculative="mtp"`` (models with DeepSeek-V3's MTP layer, greedy only) drafts the
        token after next with the MTP layer and verifies it with the main model: the same
        tokens as plain greedy decoding, in fewer main-model steps. `on_token(row, token)`
        sees each token as soon as it is confirmed (streaming).
        Returns ``[B, S + max(max_new_tokens)]``; ``last_generation`` holds the statistics
        (acceptance rate, tokens per target call; on `sim`, the simulated speedup).
        """
        from .generate import Sampling, generate

        return generate(
            self,
            ids,
            max_new_tokens,
            attention_mask=attention_mask,
            sampling=Sampling(temperature, top_k, top_p, seed),
            stop_tokens=stop_tokens,
            pad_token_id=pad_token_id,
            cache=cache,
            speculative=speculative,
            on_token=on_token,
        )

    def new_cache(self) -> Any:
        """A `KVCache` for this artifact's prefill/decode (contiguous or paged, as compiled;
        with the MTP layer's buffer for a model that has one)."""
        from .generate import _cache_spec
        from .kv_cache import KVCache

        return KVCache(_cache_spec(self))

    @property
    def in_place_cache(self) -> bool:
        """Whether donated buffers (the KV caches) are updated in place (the default)."""
        return self.executor.in_place

    @in_place_cache.setter
    def in_place_cache(self, value: bool) -> None:
        self.executor.in_place = value

    def report(self) -> Any | None:
        """What every call so far cost on the target (`sim`: a `SimReport` of cycles, bytes,
        energy per kernel), or None for targets that do not account costs."""
        return self.executor.cost_report()

    def run(self, entry: str, *args: Any, **kwargs: Any) -> Any:
        """Runs entry point `entry`; outputs have the structure the model returned."""
        if entry not in self.entry_points:
            names = ", ".join(self.entry_points)
            raise InputError(f"no entry point '{entry}' (entry points: {names})")
        signature = self.entry_points[entry]
        flat = _flatten_inputs(entry, signature, args, kwargs)
        unpad = None
        if entry == "forward" and self.manifest.get("kv_cache"):
            flat, unpad = _fit_forward(signature, flat)
        _check_inputs(entry, signature["inputs"], flat)
        _check_donated_buffers(entry, signature["inputs"], flat, self.executor.donated(entry))
        outputs = self.executor.run(entry, flat)
        if unpad is not None:
            outputs = unpad(outputs)
        out_spec = signature.get("out_spec")
        if out_spec:
            return pytree.tree_unflatten(outputs, _treespec(out_spec, entry))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _flatten_inputs(entry: str, signature: dict[str, Any], args: tuple, kwargs: dict) -> list[Any]:
    in_spec = signature.get("in_spec")
    if not in_spec:
        if kwargs:
            raise InputError(
                f"entry point '{entry}' takes positional tensors only, got keyword "
                f"argument(s) {', '.join(kwargs)}"
            )
        return list(args)
    leaves, spec = pytree.tree_flatten((args, kwargs))
    expected = _treespec(in_spec, entry)
    if spec != expected:
        raise InputError(
            f"inputs to '{entry}' have a different structure than the compiled "
            f"model's: expected {expected}, got {spec}"
        )
    constants = {c["index"]: c["value"] for c in signature.get("constants", [])}
    for index, value in constants.items():
        if leaves[index] != value or type(leaves[index]) is not type(value):
            raise InputError(
                f"argument {index} of '{entry}' was {value!r} when the model was compiled and "
                f"the graph is specialized to it; got {leaves[index]!r}"
            )
    return [leaf for i, leaf in enumerate(leaves) if i not in constants]


def _fit_forward(
    signature: dict[str, Any], flat: list[Any]
) -> tuple[list[Any], Callable[[list[Any]], list[Any]] | None]:
    """Pads a causal LM's `forward` call of ``[b, s]`` tokens up to the compiled ``[B, S]``
    and returns how to cut the outputs back; errors for a call larger than compiled.

    Padding follows each input's role (recorded at capture): dummy rows and tokens after the
    last one, masked out where there is a mask, at positions past every real one (so no real
    query sees them)."""
    roles = signature.get("roles") or []
    specs = signature["inputs"]
    if "tokens" not in roles or len(roles) != len(flat):
        return flat, None
    tokens = flat[roles.index("tokens")]
    spec = specs[roles.index("tokens")]["shape"]
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or len(spec) != 2:
        return flat, None
    (b, s), (big_b, big_s) = tokens.shape, spec
    if (b, s) == (big_b, big_s):
        return flat, None
    if b > big_b:
        raise InputError(f"batch {b} exceeds the compiled maximum batch {big_b}")
    if s > big_s:
        raise InputError(
            f"{s} tokens exceed the {big_s} that 'forward' was compiled for (use "
            "generate/prefill, which chunk any prompt up to the cache length, or compile "
            "with a longer example)"
        )
    outputs = [o for o in signature.get("outputs", []) if o and len(o["shape"]) >= 2]
    per_token = all(o["shape"][1] == big_s for o in outputs if o["shape"][0] == big_b)
    if s != big_s and not per_token:
        raise InputError(
            f"'forward' was compiled for {big_s} tokens and its output is not per token "
            f"(e.g. last-token logits), so it cannot take {s}"
        )
    padded = list(flat)
    for i, (value, role) in enumerate(zip(flat, roles)):
        if role == "other" or not isinstance(value, torch.Tensor):
            continue
        if list(value.shape) != [b, s]:
            raise InputError(
                f"input {i} ({role}) is {list(value.shape)}; it must match the tokens' {[b, s]}"
            )
        grown = torch.zeros(big_b, big_s, dtype=value.dtype)
        if role == "positions":
            grown += torch.arange(big_s, dtype=value.dtype)
            after = value.max(dim=1, keepdim=True).values + 1
            grown[:b, s:] = after + torch.arange(big_s - s, dtype=value.dtype)
        grown[:b, :s] = value
        padded[i] = grown

    def cut(outs: list[Any]) -> list[Any]:
        result = []
        for out in outs:
            if isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[0] == big_b:
                out = out[:b]
                if out.dim() >= 2 and out.shape[1] == big_s and per_token:
                    out = out[:, :s]
            result.append(out)
        return result

    return padded, cut


def _check_donated_buffers(
    entry: str, specs: list[dict[str, Any]], flat: list[Any], donated: dict[int, int]
) -> None:
    """A buffer updated in place must not share memory with any other input (one tensor
    passed as two layers' caches would be written twice)."""
    storages = [
        t.untyped_storage().data_ptr()
        if isinstance(t, torch.Tensor) and t.numel() and not t.is_meta
        else None
        for t in flat
    ]
    for i in donated:
        clash = [j for j, ptr in enumerate(storages) if j != i and ptr == storages[i]]
        if storages[i] is not None and clash:
            names = [specs[k].get("name") or f"#{k}" for k in (i, clash[0])]
            raise InputError(
                f"inputs '{names[0]}' and '{names[1]}' of '{entry}' share memory, but "
                f"'{names[0]}' is updated in place; pass separate buffers"
            )


def _check_inputs(entry: str, specs: list[dict[str, Any]], flat: list[Any]) -> None:
    if len(flat) != len(specs):
        raise InputError(f"entry point '{entry}' takes {len(specs)} input(s), got {len(flat)}")
    for i, (value, spec) in enumerate(zip(flat, specs)):
        name = spec.get("name") or f"#{i}"
        want_shape = spec["shape"]
        want = f"{spec['dtype']}[{','.join('?' if d is None else str(d) for d in want_shape)}]"
        if not isinstance(value, torch.Tensor):
            raise InputError(
                f"input {i} ('{name}') of '{entry}' must be a tensor {want}, "
                f"got {type(value).__name__}"
            )
        got = f"{str(value.dtype).removeprefix('torch.')}[{','.join(map(str, value.shape))}]"
        shape_ok = len(value.shape) == len(want_shape) and all(
            w is None or w == g for w, g in zip(want_shape, value.shape)
        )
        if value.dtype != _DTYPES.get(spec["dtype"]) or not shape_ok:
            raise InputError(f"input {i} ('{name}') of '{entry}' is {got}, expected {want}")


# Packages whose output classes are pytree nodes registered on import (Hugging Face's
# ModelOutput subclasses). A spec naming a type from one of them imports its module first;
# nothing else named in an artifact is ever imported.
PYTREE_PACKAGES = ("transformers.",)


def _treespec(text: str, entry: str) -> pytree.TreeSpec:
    try:
        return pytree.treespec_loads(text)
    except Exception as err:  # noqa: BLE001 - any decoding failure means a damaged artifact
        if _import_node_types(text):
            return _treespec(text, entry)
        raise ArtifactError(f"entry point '{entry}' has a malformed pytree spec ({err})") from None


def _import_node_types(text: str) -> bool:
    """Imports the allow-listed modules that define the spec's node types; True if any was new."""
    import importlib
    import json
    import re
    import sys

    try:
        names = re.findall(r'"type": "([A-Za-z0-9_.]+)"', json.dumps(json.loads(text)))
    except (json.JSONDecodeError, TypeError):
        return False
    imported = False
    for name in names:
        module = name.rpartition(".")[0]
        if module.startswith(PYTREE_PACKAGES) and module not in sys.modules:
            try:
                importlib.import_module(module)
            except ImportError:
                continue
            imported = True
    return imported
