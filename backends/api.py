"""The backend plug-in API (v1): what a target implements on the compile side.

A backend says which ops it supports, compiles a module (graph-level MLIR after the
pipeline) into a `Payload` (its files for the artifact: a plan, kernels, a device
description, ...) and names the run-side executor (`mlacc.executors` entry point) that
loads that payload. Out-of-tree packages register a backend under the entry-point group
`mlacc.backends` and its executor under `mlacc.executors`; `mlacc.backends.testing` is the
conformance suite every backend runs against itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from ..dialects._mlir import ir
    from ..runtime.artifact import Artifact
    from ..runtime.executable import Executable


@dataclass
class Payload:
    """What a backend adds to the artifact."""

    files: dict[str, bytes] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # new tensors (constants, ...)
    manifest: dict[str, Any] = field(default_factory=dict)  # extra manifest fields, JSON-able
    # The model's weights the payload reads (None: all of them); the artifact stores only
    # these, e.g. when the target prepared new forms of the others at compile time.
    reads_weights: frozenset[str] | None = None


@dataclass
class CompileRequest:
    """Everything a backend's `compile` gets besides the module."""

    weights: dict[str, torch.Tensor]  # the model's weights by key (may be empty: timing-only)
    options: dict[str, Any]  # backend options from `mlacc.compile(..., **options)`
    progress: Callable[[str], None] | None = None  # a line per stage of long lowerings


class Backend:
    """Base class of compilation targets. Subclasses set `name` and `executor` and implement
    `supports` and `compile`."""

    name: ClassVar[str] = ""
    executor: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def supports(self, op_name: str) -> bool:
        """True when this target can compile ops named `op_name` (e.g. "mla.attention")."""
        raise NotImplementedError

    def compile(self, module: ir.Module, request: CompileRequest) -> Payload:
        """Lowers `module` to this target's payload."""
        raise NotImplementedError

    def pass_options(self, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Options the graph passes' cost decisions should take for this target with these
        target `options` (pass name -> option name -> value), e.g. the roofline
        `mla-absorb-weights` compares on. Options written in the pipeline text win. Default:
        none (the passes' own defaults)."""
        return {}

    def load(self, artifact: Artifact) -> Executable:
        """Makes a compiled artifact callable (through the run-side executor)."""
        from ..runtime.executable import Executable

        return Executable(artifact)
