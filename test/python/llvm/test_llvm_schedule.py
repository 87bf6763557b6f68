"""The tiled/vectorized schedule and the thread pool of the `llvm` target: numerics at sizes
large enough to be scheduled (and split across threads), any team size, the options."""

from __future__ import annotations

import json

import pytest
import torch

import mlacc
from mlacc.runtime.errors import InputError


def _linear(m: int, n: int, k: int, elem: str) -> str:
    return f"""func.func @linear(%x: !torch.vtensor<[{m},{k}],{elem}>) -> !torch.vtensor<[{m},{n}],{elem}> {{
  %w = "mlacc.weight"() {{key = "w"}} : () -> !torch.vtensor<[{n},{k}],{elem}>
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[{m},{k}],{elem}>, !torch.vtensor<[{n},{k}],{elem}>, !torch.none -> !torch.vtensor<[{m},{n}],{elem}>
  return %y : !torch.vtensor<[{m},{n}],{elem}>
}}"""  # noqa: E501


@pytest.fixture(scope="module")
def gemm():
    """An fp32 [12, 384] x [640, 384]^T linear (3M multiply-adds: threaded), compiled once."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(640, 384, generator=g) / 20
    x = torch.randn(12, 384, generator=g)
    art = mlacc.compile(
        _linear(12, 640, 384, "f32"), target="llvm", pipeline="none", weights={"w": w}, opt_level=0
    )
    return art, x, torch.nn.functional.linear(x, w)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_team_size_gives_the_same_result(gemm, threads: int) -> None:
    art, x, want = gemm
    exe = art.load()
    exe.executor.set_num_threads(threads)
    assert exe.executor.num_threads() == threads
    got = exe.run("linear", x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    exe.executor.set_num_threads(1)
    assert torch.equal(exe.run("linear", x), got)  # static partition: bit-identical


def test_threads_are_recorded_and_env_overrides(gemm, monkeypatch) -> None:
    art, x, want = gemm
    assert json.loads(art.payload["llvm.json"])["threads"] == 0
    monkeypatch.setenv("MLACC_LLVM_THREADS", "2")
    exe = art.load()
    assert exe.executor.num_threads() == 2
    torch.testing.assert_close(exe.run("linear", x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", [{"threads": 1}, {"vectorize": False}])
def test_serial_and_unvectorized_code_match(options) -> None:
    g = torch.Generator().manual_seed(1)
    w = (torch.randn(96, 64, generator=g) / 8).to(torch.bfloat16)
    x = torch.randn(3, 64, generator=g).to(torch.bfloat16)
    art = mlacc.compile(
        _linear(3, 96, 64, "bf16"),
        target="llvm",
        pipeline="none",
        weights={"w": w},
        opt_level=0,
        **options,
    )
    got = art.load().run("linear", x)
    want = torch.nn.functional.linear(x.float(), w.float())
    torch.testing.assert_close(got.float(), want, rtol=1.6e-2, atol=1e-2)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_threads_option(bad) -> None:
    with pytest.raises(InputError, match="threads"):
        mlacc.compile(
            _linear(1, 8, 8, "f32"), target="llvm", pipeline="none", timing_only=True, threads=bad
        )
