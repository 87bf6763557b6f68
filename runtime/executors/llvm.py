"""The `llvm` executor: runs the native code of an artifact compiled for the `llvm` target.

Each entry point is one native function ``_mlir_ciface_<entry>(inputs..., weights...,
outputs...)`` taking memref descriptors. Weight descriptors are built once at load; per call
only the inputs' and fresh outputs' descriptors are built. A donated input (a KV cache) is
updated in place by the code and returned as the same tensor: no copy.

Threads: the code's parallel loops run on a pthread pool inside the shared object (its own
minimal OpenMP runtime, no libomp needed). The team size is, in order: ``set_num_threads(n)``,
the ``MLACC_LLVM_THREADS`` environment variable, the ``threads`` compile option, the CPUs this
process may run on.
"""

from __future__ import annotations

import ctypes
import os
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

    def donated(self) -> dict[int, int]:
        """Input index -> output index of the buffers the code updates in place."""
        return {
            spec["donated"]: i for i, spec in enumerate(self.outputs) if spec["donated"] is not None
        }

    def __call__(self, inputs: list[torch.Tensor], in_place: bool = True) -> list[torch.Tensor]:
        ins = [t if t.is_contiguous() else t.contiguous() for t in inputs]
        if not in_place:
            for i in self.donated():
                ins[i] = ins[i].clone()
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
        self._in_place = True
        self.entries = {
            name: _Entry(self.library, spec, artifact.weights) for name, spec in entries.items()
        }
        env = os.environ.get("MLACC_LLVM_THREADS", "").strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ArtifactError(
                    f"MLACC_LLVM_THREADS must be a positive integer, got '{env}'"
                ) from None
        else:
            threads = int(abi.get("threads", 0) or 0)
        if threads:
            self.set_num_threads(threads)

    def set_num_threads(self, n: int) -> None:
        """Team size of the code's parallel loops (1: run everything on the calling thread)."""
        if n < 1:
            raise ArtifactError(f"the number of threads must be >= 1, got {n}")
        setter = getattr(self.library.lib, "mlacc_set_num_threads", None)
        if setter is not None:  # artifacts built before threading have no pool
            setter.argtypes = [ctypes.c_int32]
            setter(int(n))

    def num_threads(self) -> int:
        """The current team size."""
        getter = getattr(self.library.lib, "mlacc_get_num_threads", None)
        if getter is None:
            return 1
        getter.restype = ctypes.c_int32
        return int(getter())

    def run(self, entry: str, inputs: list[torch.Tensor]) -> list[Any]:
        return self.entries[entry](inputs, self._in_place)

    def donated(self, entry: str) -> dict[int, int]:
        return self.entries[entry].donated()

    @property
    def in_place(self) -> bool:
        return self._in_place

    @in_place.setter
    def in_place(self, value: bool) -> None:
        self._in_place = bool(value)
