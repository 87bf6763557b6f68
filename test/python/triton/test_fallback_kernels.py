"""The kernels that replaced PyTorch fallbacks on the `triton` target, each against its op's
reference semantics (small shapes, under the interpreter on CPU): the per-head ``wkv_b``
projections, the dense SwiGLU MLP, rotary embedding and the embedding gather."""

from __future__ import annotations

import pytest
import torch

from mlacc.runtime.semantics import mla as sem_mla
from mlacc.runtime.semantics import moe as sem_moe
from mlacc.runtime.triton import embedding, heads, moe, rotary

DTYPES = [torch.float32, torch.bfloat16]
H, DN, DV, C = 3, 16, 24, 40  # heads, nope / value head dims, latent rank (not powers of 2)


def _rand(*shape: int, seed: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen).to(dtype).to(device)


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    """fp32: 1e-5 relative; bf16: one bf16 ulp of the largest value (summation order)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-5 if want.dtype == torch.float32 else 8e-3
    scale = want.float().abs().max().clamp_min(1.0)
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol * float(scale))


DIMS = {"num_heads": H, "qk_nope_head_dim": DN, "v_head_dim": DV}


@pytest.mark.parametrize("dtype", DTYPES)
def test_absorb_query_and_output(dtype, device) -> None:
    wkv_b = _rand(H * (DN + DV), C, seed=0, dtype=dtype, device=device)
    q_nope = _rand(2, 5, H, DN, seed=1, dtype=dtype, device=device)
    _close(heads.absorb_query(q_nope, wkv_b, **DIMS), sem_mla.absorb_query(q_nope, wkv_b, **DIMS))
    ctx = _rand(2, 5, H, C, seed=2, dtype=dtype, device=device)
    _close(heads.absorb_output(ctx, wkv_b, **DIMS), sem_mla.absorb_output(ctx, wkv_b, **DIMS))
    # a non-contiguous query (a slice of a wider projection, as the graph produces it)
    wide = _rand(2, 5, H, DN + 8, seed=3, dtype=dtype, device=device)[..., :DN]
    _close(heads.absorb_query(wide, wkv_b, **DIMS), sem_mla.absorb_query(wide, wkv_b, **DIMS))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kv_expand(dtype, device) -> None:
    wkv_b = _rand(H * (DN + DV), C, seed=4, dtype=dtype, device=device)
    latent = _rand(2, 7, C, seed=5, dtype=dtype, device=device)
    got = heads.kv_expand(latent, wkv_b, **DIMS)
    for g, w in zip(got, sem_mla.kv_expand(latent, wkv_b, **DIMS)):
        _close(g, w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_mlp(dtype, device) -> None:
    d, inter = 48, 40
    x = _rand(2, 3, d, seed=6, dtype=dtype, device=device)
    wg, wu = (_rand(inter, d, seed=s, dtype=dtype, device=device) * 0.2 for s in (7, 8))
    wd = _rand(d, inter, seed=9, dtype=dtype, device=device) * 0.2
    _close(moe.mlp(x, wg, wu, wd), sem_moe.mlp(x, wg, wu, wd))


ROPES = {
    "interleaved-plain": {"layout": "interleaved", "factor": 1.0, "cos_sin_scale": 1.0},
    "rotate_half-yarn": {"layout": "rotate_half", "factor": 40.0, "cos_sin_scale": 1.2},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ROPES))
@pytest.mark.parametrize("shape", [(2, 5, 3, 24), (2, 5, 24)], ids=["heads", "shared"])
def test_rotary_embedding(name, shape, dtype, device) -> None:
    rope = {
        "theta": 10000.0,
        "original_seq_len": 64,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "truncate": True,
        **ROPES[name],
    }
    x = _rand(*shape, seed=10, dtype=dtype, device=device)
    positions = torch.randint(0, 300, shape[:2], generator=torch.Generator().manual_seed(11))
    positions = positions.to(device)
    got = rotary.rotary_embedding(x, positions, rope=rope)
    want = sem_mla.rotary_embedding(x, positions, rope=rope)
    # cos/sin of the same fp32 angles from another math library: a few ulps
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-5 if dtype == torch.float32 else 8e-3
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding(dtype, device) -> None:
    weight = _rand(50, 36, seed=12, dtype=dtype, device=device)
    ids = torch.tensor([[3, 0, 49], [7, 7, 1]], device=device)
    got = embedding.embedding(weight, ids)
    assert torch.equal(got, torch.nn.functional.embedding(ids, weight))
    with pytest.raises(IndexError, match="out of range"):
        embedding.embedding(weight, ids + 1)
