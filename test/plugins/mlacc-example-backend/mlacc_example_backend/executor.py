"""Run side of `example-cpu`: the plan interpreter with a NumPy RMSNorm kernel."""

from __future__ import annotations

import numpy as np
import torch

from mlacc.runtime.executors import PlanExecutor


def rms_norm_numpy(x: torch.Tensor, weight: torch.Tensor, *, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim, computed in float64 NumPy."""
    a = x.detach().to(torch.float64).numpy()
    out = a / np.sqrt(np.mean(a * a, axis=-1, keepdims=True) + eps) * weight.double().numpy()
    return torch.from_numpy(out).to(x.dtype)


class ExampleExecutor(PlanExecutor):
    """Reference semantics everywhere but `mla.rms_norm`."""

    name = "example-cpu"

    def kernels(self):
        return {**super().kernels(), "mla.rms_norm": rms_norm_numpy}
