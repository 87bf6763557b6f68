"""The `mlacc` core dialect: what every compiled model needs besides mla/moe/fp8 ops."""

from __future__ import annotations

from .._mlir import ext
from ..base import op_base


class Core(ext.Dialect, name="mlacc"):
    """Named weights and other module-level plumbing."""


CoreOp = op_base(Core, "CoreOp")
