"""The `triton` target passes the backend conformance suite (under the interpreter on CPU)."""

from mlacc.backends.testing import BackendConformance


class TestTriton(BackendConformance):
    """fp32 samples: the kernels accumulate in fp32 in another order than PyTorch."""

    target = "triton"
    rtol = 1e-4
    atol = 1e-4
