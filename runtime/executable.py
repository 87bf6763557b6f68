"""`Executable`: a loaded artifact that runs like the model it was compiled from."""

from __future__ import annotations

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
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Prefill + decode with the runtime-held latent KV cache; greedy unless `temperature`."""
        from .generate import Sampling, generate

        return generate(self, ids, max_new_tokens, Sampling(temperature, top_k, seed))

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
        _check_inputs(entry, signature["inputs"], flat)
        outputs = self.executor.run(entry, flat)
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
