"""The `moe` dialect: DeepSeekMoE routing, experts and their grouped execution."""

from __future__ import annotations

from .._mlir import ext
from ..base import op_base


class MoE(ext.Dialect, name="moe"):
    """Mixture-of-experts (DeepSeekMoE) at the graph level."""


MoeOp = op_base(MoE, "MoeOp")
