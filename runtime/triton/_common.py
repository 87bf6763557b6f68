"""Helpers shared by the Triton kernels: launch-mode flags, exact bf16 rounding, dot products.

Only the Triton subset that both 3.6 (the GPU machine) and 3.9 (this repository's CI) accept
is used: masked pointer arithmetic, `tl.dot`, `range`, constexpr branches (no block pointers,
no tensor descriptors, no `boundary_check`).

Under ``TRITON_INTERPRET=1`` (read once, when this module is imported, exactly as `triton.jit`
reads it) two interpreter defects are worked around: `tl.dot` on bf16/fp8 operands is wrong
(operands are upcast to fp32 behind the ``UPCAST`` constexpr) and fp32->bf16 casts truncate
(every bf16 result goes through `round_bf16`, an exact round-to-nearest-even in integer ops,
which is also correct on a GPU). One interpreter cost is cut (`_fast_interpreted_calls`): a
call of a `@triton.jit` helper from inside a kernel re-patches `triton.language` on every call
(milliseconds each); it is patched once per helper and launch instead (the patches are never
undone inside a launch, so this changes nothing else).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "").strip().lower() in (
    "1",
    "true",
    "on",
    "yes",
)


def _fast_interpreted_calls() -> None:
    """Under the interpreter: a jit helper called from a running kernel patches the language
    modules on its first call of the launch only (Triton 3.x re-patches on every call and
    never restores those patches before the launch ends). A no-op where the interpreter's
    internals differ."""
    try:
        from triton.runtime import interpreter as interp
    except ImportError:  # pragma: no cover - a Triton without the interpreter
        return
    grid_cls, fn_cls = (
        getattr(interp, "GridExecutor", None),
        getattr(interp, "InterpretedFunction", None),
    )
    error = getattr(interp, "InterpreterError", None)
    if grid_cls is None or fn_cls is None or error is None or hasattr(fn_cls, "_mlacc_fast"):
        return
    state: dict = {"depth": 0, "seen": set()}
    launch, call = grid_cls.__call__, fn_cls.__call__

    def launch_once(self, *args, **kwargs):
        if state["depth"] == 0:
            state["seen"] = set()
        state["depth"] += 1
        try:
            return launch(self, *args, **kwargs)
        finally:
            state["depth"] -= 1

    def call_helper(self, *args, **kwargs):
        if state["depth"] == 0 or self.fn not in state["seen"]:
            state["seen"].add(self.fn)
            return call(self, *args, **kwargs)
        fn = self.rewrite()
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise error(repr(e)) from e

    grid_cls.__call__ = launch_once
    fn_cls.__call__ = call_helper
    fn_cls._mlacc_fast = True


if INTERPRET:
    _fast_interpreted_calls()

# Rounding of a kernel's fp32 result to the dtype the op's semantics produce.
ROUND_NONE, ROUND_BF16, ROUND_FP16 = 0, 1, 2


def round_mode(dtype: torch.dtype) -> int:
    """The `round_to` mode that reproduces a cast of fp32 values to `dtype`."""
    if dtype == torch.bfloat16:
        return ROUND_BF16
    if dtype == torch.float16:
        return ROUND_FP16
    if dtype == torch.float32:
        return ROUND_NONE
    raise TypeError(f"unsupported floating-point dtype {dtype} for a Triton kernel")


def dot_precision(*dtypes: torch.dtype) -> str:
    """`tl.dot` input precision: IEEE fp32 for fp32 operands (the reference's math), else tf32
    (ignored by the hardware for bf16/fp8 operands)."""
    return "ieee" if INTERPRET or any(d == torch.float32 for d in dtypes) else "tf32"


def next_pow2(n: int, lo: int = 1) -> int:
    """The smallest power of two >= max(n, lo)."""
    return max(triton.next_power_of_2(max(int(n), 1)), lo)


def check_device(*tensors: torch.Tensor) -> None:
    """Kernels run on CUDA tensors, or on CPU tensors under the interpreter."""
    for t in tensors:
        if t is not None and t.device.type != "cuda" and not INTERPRET:
            raise RuntimeError(
                f"Triton kernel got a {t.device.type} tensor; run on a CUDA device or set "
                "TRITON_INTERPRET=1 before importing mlacc's Triton kernels"
            )


@triton.jit
def round_bf16(x):
    """fp32 values rounded to the nearest bf16 (ties to even), still as fp32."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = bits + (0x7FFF + ((bits >> 16) & 1))
    bits = bits & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def round_to(x, MODE: tl.constexpr):
    """fp32 `x` rounded as a cast to the semantics' dtype would (see `round_mode`)."""
    if MODE == 1:
        return round_bf16(x)
    elif MODE == 2:
        return x.to(tl.float16).to(tl.float32)
    else:
        return x


@triton.jit
def mma(a, b, UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    """``a @ b`` with an fp32 result; operands upcast to fp32 where the interpreter is wrong."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PRECISION)
