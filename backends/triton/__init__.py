"""The `triton` target: our Triton kernels plus a host plan, for NVIDIA GPUs.

Compile side (`backend.TritonBackend`): the module becomes a plan (`PlanBuilder`), the plan is
fused (`fusion`: grouped GEMM + SwiGLU, routed weight into the down GEMM, residual add +
RMSNorm) and every step without a Triton kernel is listed as a PyTorch fallback in the
manifest. Run side: `mlacc.runtime.executors.triton.TritonExecutor`.
"""

from typing import Any

__all__ = ["TritonBackend"]


def __getattr__(name: str) -> Any:
    if name == "TritonBackend":
        from .backend import TritonBackend

        return TritonBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
