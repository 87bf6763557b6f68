"""Adapters: recognize a DeepSeek model family by structure and re-assemble it from capture
modules (`capture_modules`) that share the model's weights.

Each adapter module exposes ``matches(model) -> bool`` and ``adapt(model) -> CausalLM``.
`adapt` tries them in order; a model none of them recognizes, or one whose parts do not fit
(a missing projection, an unknown routing mode), gets a CaptureError naming the module path
and the reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from ..capture_modules import CapturedCausalLM
from ..errors import CaptureError


class Bound(NamedTuple):
    """A user's call as the captured model takes it: tokens and positions ``[B, S]`` and, for
    a padded call, ``key_mask`` ``[B, S]`` (bool, False = padding)."""

    tokens: torch.Tensor
    positions: torch.Tensor
    key_mask: torch.Tensor | None = None


@dataclass
class CausalLM:
    """A captured causal LM and how the user's model is called.

    `bind(args, kwargs)` maps the user's call to a `Bound`; `format(logits)` turns
    full-sequence logits into what the user's ``forward`` returns.
    """

    lm: CapturedCausalLM
    family: str
    max_seq_len: int
    bind: Callable[[tuple, dict], Bound]
    format: Callable[[torch.Tensor], Any]


def source_of(module: nn.Module | type) -> str:
    """``file:line`` of the module class's ``forward`` (where its computation is written)."""
    cls = module if isinstance(module, type) else type(module)
    fn = getattr(cls, "forward", cls)
    try:
        _, line = inspect.getsourcelines(fn)
        return f"{inspect.getsourcefile(fn)}:{line}"
    except (OSError, TypeError):
        return ""


def fail(path: str, module: Any, reason: str) -> CaptureError:
    """The error for a module the adapter cannot capture."""
    where = path or "<model>"
    return CaptureError(f"cannot capture {where} ({type(module).__name__}): {reason}")


def need(module: Any, path: str, dotted: str) -> Any:
    """``module.<dotted>`` (e.g. "wkv_b.weight"), or a CaptureError naming ``path.<dotted>``."""
    value = module
    for part in dotted.split("."):
        if not hasattr(value, part):
            raise fail(path, module, f"it has no '{dotted}'")
        value = getattr(value, part)
    return value


def adapt(model: nn.Module) -> CausalLM:
    """The captured form of `model`, from the first adapter that recognizes it."""
    from . import huggingface, public, reference

    families = (reference, huggingface, public)
    for family in families:
        if family.matches(model):
            return family.adapt(model)
    names = ", ".join(f.DESCRIPTION for f in families)
    raise fail("", model, f"no adapter recognizes this model (supported: {names})")
