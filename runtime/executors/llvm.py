"""The `llvm` executor: runs the native code of an artifact compiled for the `llvm` target.

Each entry point is one native function ``_mlir_ciface_<entry>(inputs..., weights...,
outputs...)`` taking memref descriptors. Weight descriptors are built once at load; per call
only the inputs' and fresh outputs' descriptors are built. A donated input (a KV cache) is
updated in place by the code and returned as the same tensor: no copy.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch

from ..errors import ArtifactError
from ..llvm import NativeLibrary, descriptor
from .base import Executor

ABI_FILE = "llvm.json"
LIBRARY_FILE = "model.so"


class _Entry:
    """One callable entry point: the native function and its argument layout."""

    def __init__(self, lib: NativeLibrary, abi: dict[str, Any], weights: dict[str, torch.Tensor]):
        self.fn = lib.function(abi["symbol"])
        self.inputs = abi["inputs"]
        self.outputs = abi["outputs"]
        self.weights = []
        for spec in abi["weights"]:
            key = spec["key"]
            if key not in weights:
                raise ArtifactError(f"the llvm artifact needs weight '{key}', which it lacks")
            w = weights[key].contiguous()
            if (
                list(w.shape) != spec["shape"]
                or str(w.dtype).removeprefix("torch.") != spec["dtype"]
            ):
                raise ArtifactError(
                    f"weight '{key}' is {w.dtype}{list(w.shape)}, the code expects "
                    f"{spec['dtype']}{spec['shape']}"
                )
            self.weights.append(w)
        self.weight_descs = [descriptor(w) for w in self.weights]

    def __call__(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        ins = [t if t.is_contiguous() else t.contiguous() for t in inputs]
        outs: list[torch.Tensor] = []
        results: list[torch.Tensor] = []
        for spec in self.outputs:
            if spec["donated"] is not None:
                results.append(ins[spec["donated"]])
                continue
            t = torch.empty(spec["shape"], dtype=getattr(torch, spec["dtype"]))
            outs.append(t)
            results.append(t)
        descs = [descriptor(t) for t in ins] + self.weight_descs + [descriptor(t) for t in outs]
        self.fn(*[ctypes.byref(d) for d in descs])
        return results


class LLVMExecutor(Executor):
    """Runs `llvm` artifacts: native code via ctypes, weights and caches as memrefs."""

    name = "llvm"

    def __init__(self, artifact):
        super().__init__(artifact)
        abi = artifact.payload_json(ABI_FILE)
        if LIBRARY_FILE not in artifact.payload:
            raise ArtifactError(f"the llvm artifact has no payload file '{LIBRARY_FILE}'")
        try:
            cpu = abi["cpu"]
            entries = abi["entry_points"]
        except (KeyError, TypeError):
            raise ArtifactError(f"malformed payload file '{ABI_FILE}'") from None
        self.library = NativeLibrary(artifact.payload[LIBRARY_FILE], cpu)
        self.entries = {
            name: _Entry(self.library, spec, artifact.weights) for name, spec in entries.items()
        }

    def run(self, entry: str, inputs: list[torch.Tensor]) -> list[Any]:
        return self.entries[entry](inputs)
