"""The `moe` dialect (DeepSeekMoE)."""

from .dialect import MoE
from .ops import *  # noqa: F403
from .ops import __all__ as _ops

__all__ = ["MoE", *_ops]
