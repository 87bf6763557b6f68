"""The `mla` dialect: DeepSeek's Multi-head Latent Attention, its pieces, RMSNorm and RoPE."""

from __future__ import annotations

from .._mlir import ext
from ..base import op_base


class MLA(ext.Dialect, name="mla"):
    """Multi-head Latent Attention (DeepSeek-V2/V3) at the graph level."""


MlaOp = op_base(MLA, "MlaOp")
