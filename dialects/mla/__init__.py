"""The `mla` dialect (Multi-head Latent Attention)."""

from .dialect import MLA
from .ops import *  # noqa: F403
from .ops import __all__ as _ops

__all__ = ["MLA", *_ops]
