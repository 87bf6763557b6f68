"""The `llvm` target passes the backend conformance suite (native code vs the reference)."""

from typing import Any, ClassVar

from mlacc.backends.testing import BackendConformance


class TestLLVM(BackendConformance):
    """Generated CPU code: fp32 contractions in a different order than PyTorch's BLAS."""

    target = "llvm"
    rtol = 1e-4
    atol = 1e-5
    compile_options: ClassVar[dict[str, Any]] = {"opt_level": 0}  # fast to compile
