"""The `reference` executor: the golden model every other target is checked against."""

from __future__ import annotations

from .base import PlanExecutor


class ReferenceExecutor(PlanExecutor):
    """Runs plans with the ops' reference semantics (pure PyTorch, fp32 where documented)."""

    name = "reference"
