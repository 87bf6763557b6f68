"""Numerics of every op lowering of the `llvm` target against the ops' reference semantics.

All cases (`op_cases`) are entry points of one module: one compile, one native object.
"""

from __future__ import annotations

import zlib

import pytest
import torch
from op_cases import build_cases, module_of

import mlacc

CASES = build_cases(seed=0)


@pytest.fixture(scope="module")
def executables() -> tuple[object, object]:
    """(llvm, reference) executables of the module of all cases."""
    text = module_of(CASES)
    llvm = mlacc.compile(text, target="llvm", pipeline="none", opt_level=0).load()
    reference = mlacc.compile(text, target="reference", pipeline="none").load()
    return llvm, reference


def _close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if not got.is_floating_point():
        assert torch.equal(got, want), what
        return
    if got.dtype == torch.float8_e4m3fn:
        assert torch.equal(got.view(torch.uint8), want.view(torch.uint8)), what
        return
    # atol scales with the output: an element that cancels to ~0 in a sum of terms ~|want|
    # keeps the rounding error of those terms (a few ulp of 65 is 5e-5 in grouped matmuls)
    rtol, atol = {torch.float32: (2e-5, 1e-5), torch.bfloat16: (1.6e-2, 1e-2)}[got.dtype]
    scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol * scale, msg=what)


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_reference(name: str, executables) -> None:
    llvm, reference = executables
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) % 1000)  # same every run
    inputs = CASES[name].make(g)
    got = llvm.run(name, *[t.clone() for t in inputs])
    want = reference.run(name, *[t.clone() for t in inputs])
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        _close(a, b, f"{name} output {i}")


def test_cache_update_is_in_place(executables) -> None:
    """The cache input is donated: the output is the very tensor passed in, updated."""
    llvm, reference = executables
    inputs = CASES["cache_update_tables"].make(torch.Generator().manual_seed(1))
    want = reference.run("cache_update_tables", *[t.clone() for t in inputs])
    cache = inputs[0].clone()
    out = llvm.run("cache_update_tables", cache, *inputs[1:])
    assert out is cache
    torch.testing.assert_close(cache, want, rtol=2e-5, atol=1e-5)
