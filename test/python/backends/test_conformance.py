"""Every in-tree target and the example out-of-tree plug-in pass the conformance suite."""

from mlacc.backends.testing import BackendConformance


class TestReferenceConformance(BackendConformance):
    target = "reference"


class TestExamplePluginConformance(BackendConformance):
    """`example-cpu` is installed from test/plugins/ and found only through its entry points."""

    target = "example-cpu"


class TestSimConformance(BackendConformance):
    """`sim` computes with the reference semantics, so it must match them exactly."""

    target = "sim"
    rtol = 0.0
    atol = 0.0
