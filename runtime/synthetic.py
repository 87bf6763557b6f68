"""Deterministic stand-in data for trying a model without real inputs or checkpoints."""

from __future__ import annotations

import math
from typing import Any

import torch


def synthetic_inputs(
    specs: list[dict[str, Any]], seed: int = 0, *, meta: bool = False
) -> list[torch.Tensor]:
    """Inputs matching an entry point's signature: floats N(0, 1); integers are positions
    (0..n-1 along the last dim), which are valid token ids as well. With `meta`, tensors
    without data (for timing-only runs of full-size models)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for spec in specs:
        shape = [1 if d is None else d for d in spec["shape"]]
        dtype = getattr(torch, spec["dtype"])
        if meta:
            out.append(torch.empty(shape, dtype=dtype, device="meta"))
        elif dtype.is_floating_point:
            out.append(torch.randn(shape, generator=gen).to(dtype))
        else:
            out.append(torch.arange(shape[-1] if shape else 1).expand(shape).to(dtype).clone())
    return out


def synthetic_weights(specs: dict[str, dict[str, Any]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights for a manifest's weight table: norm weights are ones, other vectors N(0, 0.01),
    matrices N(0, 1/fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, spec in sorted(specs.items()):
        shape, dtype = spec["shape"], getattr(torch, spec["dtype"])
        if "norm" in key:
            t = torch.ones(shape)
        elif len(shape) == 1:
            t = 0.1 * torch.randn(shape, generator=gen)
        else:
            t = torch.randn(shape, generator=gen) / math.sqrt(shape[-1])
        out[key] = t.to(dtype)
    return out
