"""The `fp8` dialect (block-scaled float8 quantization)."""

from .dialect import FP8
from .ops import *  # noqa: F403
from .ops import __all__ as _ops

__all__ = ["FP8", *_ops]
