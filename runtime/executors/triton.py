"""Run side of the `triton` target: the plan's steps launch our Triton kernels.

`TritonExecutor` is a `PlanExecutor` whose kernel table maps op names to the Triton wrappers
of the kernel package the artifact carries (``payload/kernels``: the sources it was compiled
with, digest-checked and imported privately by `triton_sources`, not the installed
`mlacc.runtime.triton`), each with its op's semantics signature; the plan's other steps
run through PyTorch, as the manifest's ``fallbacks`` lists at compile time. Loading checks
the environment first and fails with one line when the kernels cannot run: no Triton, a
Triton older than the artifact needs, no CUDA GPU without ``TRITON_INTERPRET=1``, or a GPU
older than the artifact needs. On a GPU, the sm_90 cubins the artifact carries go into
Triton's cache first where this Triton and GPU match theirs (`triton_binaries`;
``binaries_status`` says what happened), so the JIT loads them instead of compiling; `decode`
replays as a CUDA graph once its buffers are stable (see `_DecodeGraph`); CPU and
interpreter runs never capture.

Imports torch and triton only (never MLIR, never the compile side).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from ..errors import TargetError
from ..interpreter import Kernel
from ..semantics.registry import InPlace
from .base import PlanExecutor
from .triton_binaries import checked_binaries, seed_cache
from .triton_sources import checked_sources, interpreting, load_kernel_package


def _version(text: str) -> tuple[int, int]:
    parts = [*text.split("+")[0].split("."), "0", "0"][:2]
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except ValueError:
        return (0, 0)


def check_environment(manifest: Mapping[str, Any]) -> torch.device:
    """The device the artifact's kernels run on; TargetError (one line) when none can."""
    info = manifest.get("backend", {}).get("triton", {})
    try:
        import triton
    except ImportError:
        raise TargetError(
            "target 'triton' needs the 'triton' package (pip install triton); it is not installed"
        ) from None
    need = str(info.get("min_version", "3.6"))
    have = str(triton.__version__)
    if _version(have) < _version(need) or _version(have)[0] != _version(need)[0]:
        raise TargetError(
            f"Triton {have} cannot run this artifact: its kernels need Triton {need} to "
            f"{_version(need)[0]}.x (compiled with {info.get('compiled_with')})"
        )
    if interpreting():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TargetError(
            "target 'triton' needs an NVIDIA GPU (no CUDA device found); set TRITON_INTERPRET=1 "
            "to run its kernels on the CPU under the Triton interpreter (slow)"
        )
    major, minor = torch.cuda.get_device_capability()
    sm, need_sm = major * 10 + minor, int(info.get("min_sm", 80))
    if sm < need_sm:
        raise TargetError(
            f"GPU '{torch.cuda.get_device_name()}' (sm_{sm}) is too old for this artifact: its "
            f"kernels need sm_{need_sm} or newer"
            + (" (FP8 tensor cores)" if need_sm >= 89 else " (bf16 tensor cores)")
        )
    return torch.device("cuda", torch.cuda.current_device())


class TritonExecutor(PlanExecutor):
    """Executes `triton` artifacts: Triton kernels for the ops that have one, PyTorch for the
    listed fallbacks."""

    name = "triton"

    def __init__(self, artifact: Any):
        self.device = check_environment(artifact.manifest)
        # the kernels this artifact was compiled with (payload/kernels), never the installed ones
        self.kernel_package = load_kernel_package(
            checked_sources(artifact.payload, artifact.manifest)
        )
        info = artifact.manifest.get("backend", {}).get("triton", {})
        binaries = checked_binaries(artifact.payload, info.get("binaries"))
        # What became of the cubins the artifact carries (see `triton_binaries.seed_cache`).
        self.binaries_status = _place_binaries(
            self.device, self.kernel_package, info.get("binaries"), binaries
        )
        super().__init__(artifact)
        if self.device.type == "cuda":
            self.interpreter.weights = {
                k: v.to(self.device, non_blocking=True) for k, v in artifact.weights.items()
            }
        self.use_cuda_graph = (
            self.device.type == "cuda"
            and bool(info.get("cuda_graph", True))
            and os.environ.get("MLACC_TRITON_CUDA_GRAPH", "1") != "0"
        )
        self._graphs: dict[str, _DecodeGraph] = {}
        # Why decode does not replay as a graph (None while it does or has not run yet).
        self.cuda_graph_status: str | None = None if self.use_cuda_graph else "off"

    def kernels(self) -> Mapping[str, Kernel]:
        """The reference semantics, overridden by the artifact's Triton kernels."""
        table: dict[str, Kernel] = dict(super().kernels())
        table.update(self.kernel_package.kernel_table())
        return table

    def in_place_forms(self) -> Mapping[str, InPlace]:
        """The reference in-place forms with the Triton kernels in their place (the donated
        cache's update runs our kernel on the buffer the runtime passed in), plus those of
        the target's fused ops (`triton.*`), whose updated operand the kernels name."""
        forms: dict[str, InPlace] = dict(super().in_place_forms())
        package = self.kernel_package
        operands = package.in_place_operands() if hasattr(package, "in_place_operands") else {}
        for op, kernel in package.in_place_kernel_table().items():
            if op in forms:
                forms[op] = replace(forms[op], fn=kernel)
            elif op in operands:
                forms[op] = InPlace(kernel, operands[op], operands[op])
        return forms

    def run(self, entry: str, inputs: list[torch.Tensor]) -> list[Any]:
        moved = [t.to(self.device) if isinstance(t, torch.Tensor) else t for t in inputs]
        fn = self.plan.functions[entry]
        if self.use_cuda_graph and entry == "decode":
            outputs = self._run_graph(entry, moved)
        else:
            outputs = self.interpreter.run(fn, moved)
        return _restore(inputs, moved, outputs)

    def _run_graph(self, entry: str, inputs: list[Any]) -> list[Any]:
        fn = self.plan.functions[entry]
        donated = getattr(fn, "donated", None)
        if not donated:
            self.cuda_graph_status = "off: the plan does not donate its caches"
            return self.interpreter.run(fn, inputs)
        graph = self._graphs.get(entry)
        key = _buffer_key(inputs, donated)
        if graph is None or graph.key != key:
            self.interpreter.run(fn, inputs)  # warm-up: compiles kernels, prepares weights
            try:
                graph = _DecodeGraph(self.interpreter, fn, inputs, donated, key)
            except Exception as err:  # noqa: BLE001 - capture failures fall back, reported
                self.cuda_graph_status = f"off: capture failed ({type(err).__name__}: {err})"
                self.use_cuda_graph = False
                return self.interpreter.run(fn, inputs)
            self._graphs[entry] = graph
            self.cuda_graph_status = "on"
        return graph.replay(inputs)


def _place_binaries(
    device: torch.device, package: Any, record: Mapping[str, Any] | None, binaries: list
) -> str:
    if not binaries:
        return "none carried"
    if device.type != "cuda":
        return "not used: the kernels run under the Triton interpreter"
    from triton.runtime.driver import driver

    try:
        return seed_cache(package, record, binaries, driver.active.get_current_target())
    except Exception as err:  # noqa: BLE001 - the JIT compiles from the sources instead
        return f"not used: {type(err).__name__}: {err}"


def _buffer_key(inputs: list[Any], donated: Mapping[Any, Any]) -> tuple:
    """Identity of the donated buffers (a graph replays only on the buffers it captured)."""
    return tuple(
        (int(i), inputs[int(i)].data_ptr(), tuple(inputs[int(i)].shape)) for i in sorted(donated)
    )


class _DecodeGraph:
    """One captured decode step: non-donated inputs are copied into static buffers, donated
    ones (the caches) are the captured buffers themselves, outputs are cloned out."""

    def __init__(
        self, interpreter: Any, fn: Any, inputs: list[Any], donated: Mapping[Any, Any], key: tuple
    ):
        self.key = key
        self.donated = {int(i) for i in donated}
        self.static = [
            t if i in self.donated or not isinstance(t, torch.Tensor) else t.clone()
            for i, t in enumerate(inputs)
        ]
        self.graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            interpreter.run(fn, self.static)  # second warm-up on the side stream
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(self.graph):
            self.outputs = interpreter.run(fn, self.static)

    def replay(self, inputs: list[Any]) -> list[Any]:
        for i, t in enumerate(inputs):
            if i not in self.donated and isinstance(t, torch.Tensor):
                self.static[i].copy_(t)
        self.graph.replay()
        donated_ptrs = {self.static[i].data_ptr() for i in self.donated}
        return [
            o.clone() if isinstance(o, torch.Tensor) and o.data_ptr() not in donated_ptrs else o
            for o in self.outputs
        ]


def _restore(originals: list[Any], moved: list[Any], outputs: list[Any]) -> list[Any]:
    """Outputs on the callers' device; a donated buffer that was moved is written back."""
    home = next((t.device for t in originals if isinstance(t, torch.Tensor)), None)
    out = []
    for o in outputs:
        if isinstance(o, torch.Tensor):
            hit = next((k for k, m in enumerate(moved) if m is o and originals[k] is not m), None)
            if hit is not None:
                originals[hit].copy_(o)
                o = originals[hit]
            elif home is not None and o.device != home:
                o = o.to(home)
        out.append(o)
    return out
