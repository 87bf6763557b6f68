"""Executor base classes: what the run side of a target implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ArtifactError, InputError
from ..interpreter import Kernel, PlanInterpreter
from ..plan import Plan
from ..validate import check_plan

if TYPE_CHECKING:
    import torch

    from ..artifact import Artifact
    from ..semantics.registry import InPlace


class Executor:
    """Runs the entry points of one loaded artifact.

    Subclasses are constructed with the artifact (manifest, weights, payload files) and
    implement `run`. Inputs arrive validated against the manifest's signature.
    """

    name: ClassVar[str] = ""
    # False for executors that can run timing-only artifacts (no weight data).
    needs_weights: ClassVar[bool] = True

    def __init__(self, artifact: Artifact):
        if self.needs_weights and not artifact.manifest.get("weights", {}).get("present", True):
            raise ArtifactError(
                f"artifact was compiled timing-only (no weight data); executor '{self.name}' "
                "needs weights to run it"
            )
        self.artifact = artifact

    def run(self, entry: str, inputs: list[torch.Tensor]) -> list[Any]:
        """Runs entry point `entry`; returns its flat outputs."""
        raise NotImplementedError

    def cost_report(self) -> Any | None:
        """What the calls so far cost on the target (simulating targets), or None."""
        return None

    def donated(self, entry: str) -> dict[int, int]:
        """Inputs of `entry` updated in place and returned (input index -> output index)."""
        return {}

    @property
    def in_place(self) -> bool:
        """Whether donated inputs are updated in place (False: each call works on a copy)."""
        return False

    @in_place.setter
    def in_place(self, value: bool) -> None:
        raise InputError(f"executor '{self.name}' has no in-place switch")


class PlanExecutor(Executor):
    """Executes the artifact's `payload/plan.json` with a kernel table.

    The table starts from the ops' reference semantics; a target overrides entries with its
    own kernels (`kernels()`), so one interpreter serves every plan-based target.
    """

    PLAN_FILE: ClassVar[str] = "plan.json"
    interpreter_class: ClassVar[type[PlanInterpreter]] = PlanInterpreter

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        try:
            self.plan = Plan.from_json(artifact.payload_json(self.PLAN_FILE))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ArtifactError(
                f"malformed plan in artifact: {type(err).__name__}: {err}"
            ) from None
        kernels, forms = self.kernels(), self.in_place_forms()
        check_plan(self.plan, artifact.manifest, artifact.weights, kernels.__contains__, forms)
        self.interpreter = self.interpreter_class(
            artifact.weights, kernels, {name: form.fn for name, form in forms.items()}
        )

    def kernels(self) -> Mapping[str, Kernel]:
        """Op name -> kernel; defaults to the reference semantics of every dialect op."""
        from ..semantics import SEMANTICS

        return SEMANTICS

    def in_place_forms(self) -> Mapping[str, InPlace]:
        """Op name -> the kernel that updates a donated buffer in place (`Step.in_place`) and
        which operand it updates; defaults to the in-place reference semantics."""
        from ..semantics import IN_PLACE

        return dict(IN_PLACE)

    def run(self, entry: str, inputs: list[torch.Tensor]) -> list[Any]:
        return self.interpreter.run(self.plan.functions[entry], inputs)

    def donated(self, entry: str) -> dict[int, int]:
        return dict(self.plan.functions[entry].donated)

    @property
    def in_place(self) -> bool:
        return self.interpreter.in_place

    @in_place.setter
    def in_place(self, value: bool) -> None:
        self.interpreter.in_place = bool(value)
