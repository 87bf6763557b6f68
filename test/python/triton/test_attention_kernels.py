"""The MLA attention kernels of the `triton` target against the ops' reference semantics.

Runs under the Triton interpreter on CPU (tiny shapes; `conftest.py` sets TRITON_INTERPRET) and,
for the `gpu`-marked tests, on a CUDA device with TRITON_INTERPRET=0.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from mlacc.runtime.semantics import mla as sem
from mlacc.runtime.semantics import rope as sem_rope
from mlacc.runtime.triton import attention as A

INTERPRETED = A._interpreted()
DEVICE = "cpu" if INTERPRETED or not torch.cuda.is_available() else "cuda"
ROPE = {
    "layout": "interleaved",
    "theta": 10000.0,
    "factor": 1.0,
    "original_seq_len": 4096,
    "beta_fast": 32,
    "beta_slow": 1,
    "cos_sin_scale": 1.0,
    "truncate": True,
}
# bf16 keeps 8 bits: the kernels' fp32 -> bf16 output rounding (truncation under the
# interpreter) and bf16 p in the value dot on a GPU differ from the semantics by ~1-2 ulp.
TOL = {torch.float32: {"atol": 2e-5, "rtol": 1e-4}, torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2}}

requires_cuda = pytest.mark.skipif(
    INTERPRETED or not torch.cuda.is_available(), reason="needs a CUDA device, not interpreted"
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=g).to(dtype).to(DEVICE)


def _tables(layout: str, dr: int, n: int = 256) -> tuple[torch.Tensor | None, ...]:
    if layout == "none":
        return None, None
    cos, sin = sem_rope.tables(ROPE, dr, n)
    return cos.to(DEVICE), sin.to(DEVICE)


def _paged(cache: torch.Tensor, block_size: int, g: torch.Generator):
    """The same logical cache as a pool ``[N, block_size, E]`` in shuffled blocks (block 0
    scratch, filled with garbage) and its block table."""
    b, slots, e = cache.shape
    m = slots // block_size
    order = torch.randperm(b * m, generator=g) + 1
    table = order.view(b, m).to(torch.int32).to(cache.device)
    pool = torch.full((b * m + 1, block_size, e), 1e4, dtype=cache.dtype, device=cache.device)
    pool[table.long()] = cache.view(b, m, block_size, e)
    return pool, table


def _mask_ref_latent(q, q_pe, cache, positions, cos, sin, layout, key_mask, kw) -> torch.Tensor:
    """latent_attention with a key_mask: the normative semantics when they take one, else the
    same math spelled out (scores as the semantics, visibility ``j <= pos and key_mask``)."""
    if "key_mask" in inspect.signature(sem.latent_attention).parameters:
        return sem.latent_attention(q, q_pe, cache, positions, cos, sin, key_mask=key_mask, **kw)
    f32 = torch.float32
    if cos is not None:
        q_pe = sem._rotate_by_tables(q_pe, positions, cos, sin, layout, "test")
    c, k_pe = cache.to(f32).split([kw["kv_lora_rank"], q_pe.shape[-1]], dim=-1)
    scores = torch.einsum("bshc,btc->bhst", q.to(f32), c)
    scores = (scores + torch.einsum("bshr,btr->bhst", q_pe.to(f32), k_pe)) * kw["softmax_scale"]
    slots = torch.arange(cache.shape[1], device=cache.device)
    visible = (slots[None, None, None, :] <= positions[:, None, :, None]) & key_mask[
        :, None, None, :
    ]
    p = sem._softmax_visible(scores, visible)
    return torch.einsum("bhst,btc->bshc", p, c).to(q.dtype)


def _masked_key_positions(k_pos: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """The plan's encoding of a key_mask: masked keys at a position past every query."""
    if hasattr(sem, "mask_key_positions"):
        return sem.mask_key_positions(k_pos, key_mask)
    return torch.where(key_mask, k_pos.long(), torch.iinfo(torch.int64).max)


def _mask_ref_prefill(args, cos, sin, key_mask, kw) -> torch.Tensor:
    """decoupled_attention with a key_mask, through the semantics: rotary parts rotated at the
    true positions, then masked keys moved past every query."""
    q_nope, q_pe, k_nope, k_pe, v, q_pos, k_pos = args
    if cos is not None:
        what = "test"
        q_pe = sem._rotate_by_tables(q_pe, q_pos, cos, sin, kw["rope_layout"], what)
        k_pe = sem._rotate_by_tables(k_pe, k_pos, cos, sin, kw["rope_layout"], what)
    hidden = _masked_key_positions(k_pos, key_mask)
    plain = {**kw, "rope_layout": "none"}
    return sem.decoupled_attention(q_nope, q_pe, k_nope, k_pe, v, q_pos, hidden, **plain)


# --------------------------------------------------------------------------------------------
# mla.latent_attention


def _latent_inputs(seed: int, dtype: torch.dtype, b=2, s=2, h=4, c=32, dr=16, slots=64):
    g = _gen(seed)
    q = _randn(g, b, s, h, c, dtype=dtype)
    q_pe = _randn(g, b, s, h, dr, dtype=dtype)
    cache = _randn(g, b, slots, c + dr, dtype=dtype)
    positions = torch.randint(0, slots, (b, s), generator=g).to(DEVICE)
    return g, q, q_pe, cache, positions


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["none", "interleaved", "rotate_half"])
def test_latent_attention_matches_semantics(dtype: torch.dtype, layout: str) -> None:
    _, q, q_pe, cache, positions = _latent_inputs(1, dtype)
    positions[0, 0] = 0  # a single visible slot
    positions[1, 1] = cache.shape[1] - 1  # every slot
    cos, sin = _tables(layout, q_pe.shape[-1])
    kw = {"kv_lora_rank": q.shape[-1], "softmax_scale": 0.3, "rope_layout": layout}
    out = A.latent_attention(q, q_pe, cache, positions, cos, sin, **kw)
    ref = sem.latent_attention(q, q_pe, cache, positions, cos, sin, **kw)
    assert out.dtype == dtype and out.shape == ref.shape
    torch.testing.assert_close(out, ref, **TOL[dtype])


@pytest.mark.parametrize("splits", [1, 3])
def test_latent_attention_paged_equals_contiguous(splits: int) -> None:
    g, q, q_pe, cache, positions = _latent_inputs(2, torch.float32, s=3)
    cos, sin = _tables("rotate_half", q_pe.shape[-1])
    kw = {"kv_lora_rank": q.shape[-1], "softmax_scale": 0.2, "rope_layout": "rotate_half"}
    config = A.LatentConfig(block_r=16, block_n=16, num_splits=splits, num_warps=4, num_stages=2)
    pool, table = _paged(cache, 8, g)
    plan = A.plan_latent_attention
    flat = A._run(plan(q, q_pe, cache, positions, cos, sin, None, None, **kw, config=config))
    paged = A._run(plan(q, q_pe, pool, positions, cos, sin, table, None, **kw, config=config))
    assert torch.equal(flat, paged)
    torch.testing.assert_close(
        flat, sem.latent_attention(q, q_pe, cache, positions, cos, sin, **kw)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_latent_attention_split_kv(dtype: torch.dtype) -> None:
    """Many splits (some past every position: nothing visible there) merged by the combine."""
    _, q, q_pe, cache, positions = _latent_inputs(3, dtype, h=8, slots=96)
    positions[0] = torch.tensor([5, 90])
    kw = {"kv_lora_rank": q.shape[-1], "softmax_scale": 0.25, "rope_layout": "none"}
    ref = sem.latent_attention(q, q_pe, cache, positions, **kw)
    for splits in (1, 6):
        config = A.LatentConfig(16, 16, splits, 4, 2)
        plan = A.plan_latent_attention(
            q, q_pe, cache, positions, None, None, None, None, **kw, config=config
        )
        assert len(plan[0]) == (2 if splits > 1 else 1)
        torch.testing.assert_close(A._run(plan), ref, **TOL[dtype])


def test_latent_attention_verify_rows_and_wide_heads() -> None:
    """S*H = 3*12 rows over several row blocks, per-row positions, non-power-of-2 widths."""
    _, q, q_pe, cache, positions = _latent_inputs(4, torch.float32, b=2, s=3, h=12, c=24, dr=12)
    positions = torch.tensor([[3, 4, 5], [40, 41, 63]], device=DEVICE)
    cos, sin = _tables("interleaved", 12)
    kw = {"kv_lora_rank": 24, "softmax_scale": 0.3, "rope_layout": "interleaved"}
    config = A.LatentConfig(16, 16, 2, 4, 2)
    plan = A.plan_latent_attention
    out = A._run(plan(q, q_pe, cache, positions, cos, sin, None, None, **kw, config=config))
    ref = sem.latent_attention(q, q_pe, cache, positions, cos, sin, **kw)
    torch.testing.assert_close(out, ref, **TOL[torch.float32])


@pytest.mark.parametrize("paged", [False, True])
def test_latent_attention_key_mask_and_empty_rows(paged: bool) -> None:
    g, q, q_pe, cache, positions = _latent_inputs(5, torch.float32)
    key_mask = (torch.rand(2, 64, generator=g) > 0.3).to(DEVICE)
    key_mask[1, : int(positions[1].max()) + 1] = False  # sequence 1 sees nothing: zero rows
    kw = {"kv_lora_rank": q.shape[-1], "softmax_scale": 0.3, "rope_layout": "interleaved"}
    cos, sin = _tables("interleaved", q_pe.shape[-1])
    pool, table = _paged(cache, 16, g) if paged else (cache, None)
    out = A.latent_attention(q, q_pe, pool, positions, cos, sin, table, key_mask, **kw)
    ref = _mask_ref_latent(q, q_pe, cache, positions, cos, sin, "interleaved", key_mask, kw)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert out[0].abs().sum() > 0
    torch.testing.assert_close(out, ref, **TOL[torch.float32])


def test_latent_config_heuristic() -> None:
    """Small batches split the KV axis (bounded by the partials' traffic), big ones do not."""
    v3 = {"rows": 128, "latent": 512, "entry_bytes": 576 * 2}
    one = A.latent_config(batch=1, slots=16384, **v3)
    big = A.latent_config(batch=128, slots=4096, **v3)
    assert one.num_splits > 8 and big.num_splits == 1
    assert one.block_r == big.block_r == 32 and big.num_warps == 8
    assert A.latent_config(batch=1, rows=16, slots=1024, latent=512, entry_bytes=1152).block_r == 16
    # fp32 entries: a 64-row x 64-slot tile takes 8 warps (4 spill on sm_90)
    tiny = {"batch": 1, "rows": 64, "slots": 256, "latent": 32, "entry_bytes": 40 * 4}
    assert A.latent_config(**tiny, element_bytes=4).num_warps == 8
    assert A.latent_config(**{**tiny, "entry_bytes": 80}).num_warps == 4


# --------------------------------------------------------------------------------------------
# mla.decoupled_attention


def _prefill_inputs(seed: int, dtype: torch.dtype, b=2, s=20, t=40, h=2, dn=32, dr=16, dv=16):
    g = _gen(seed)
    args = (
        _randn(g, b, s, h, dn, dtype=dtype),
        _randn(g, b, s, h, dr, dtype=dtype),
        _randn(g, b, t, h, dn, dtype=dtype),
        _randn(g, b, t, dr, dtype=dtype),
        _randn(g, b, t, h, dv, dtype=dtype),
        torch.randint(0, t, (b, s), generator=g).to(DEVICE),
        torch.arange(t)[None].expand(b, t).contiguous().to(DEVICE),
    )
    return g, args


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["none", "interleaved", "rotate_half"])
def test_decoupled_attention_matches_semantics(dtype: torch.dtype, layout: str) -> None:
    _, args = _prefill_inputs(11, dtype)
    cos, sin = _tables(layout, args[1].shape[-1])
    kw = {"softmax_scale": 0.2, "rope_layout": layout}
    config = A.PrefillConfig(block_m=16, block_n=16, num_warps=4, num_stages=2)
    out = A._run(A.plan_decoupled_attention(*args, cos, sin, None, **kw, config=config))
    ref = sem.decoupled_attention(*args, cos, sin, **kw)
    torch.testing.assert_close(out, ref, **TOL[dtype])
    torch.testing.assert_close(A.decoupled_attention(*args, cos, sin, **kw), ref, **TOL[dtype])


def test_decoupled_attention_causal_chunk() -> None:
    """A prefill chunk at positions 17..32 over keys 0..39: the last query block's newest
    visible key opens a key block (32..47) of which it sees only that first key."""
    _, args = _prefill_inputs(13, torch.float32, s=16, t=40)
    q_pos = (torch.arange(16, device=DEVICE) + 17)[None].expand(2, 16).contiguous()
    args = (*args[:5], q_pos, args[6])
    kw = {"softmax_scale": 0.2, "rope_layout": "none"}
    config = A.PrefillConfig(16, 16, 4, 2)
    out = A._run(A.plan_decoupled_attention(*args, None, None, None, **kw, config=config))
    torch.testing.assert_close(out, sem.decoupled_attention(*args, **kw), **TOL[torch.float32])


def test_decoupled_attention_shuffled_keys_mask_and_empty_rows() -> None:
    """Keys in no particular position order (block skipping must not assume one), a key_mask,
    and queries that see nothing (positions before every visible key)."""
    g, args = _prefill_inputs(12, torch.float32, t=48)
    q_nope, q_pe, k_nope, k_pe, v, q_pos, k_pos = args
    k_pos = torch.stack([torch.randperm(48, generator=g) + 3 for _ in range(2)]).to(DEVICE)
    q_pos[0, :4] = torch.tensor([0, 1, 2, 0])  # below every key position (>= 3)
    key_mask = (torch.rand(2, 48, generator=g) > 0.25).to(DEVICE)
    args = (q_nope, q_pe, k_nope, k_pe, v, q_pos, k_pos)
    cos, sin = _tables("rotate_half", q_pe.shape[-1], 64)
    kw = {"softmax_scale": 0.2, "rope_layout": "rotate_half"}
    config = A.PrefillConfig(16, 16, 4, 2)
    out = A._run(A.plan_decoupled_attention(*args, cos, sin, key_mask, **kw, config=config))
    ref = _mask_ref_prefill(args, cos, sin, key_mask, kw)
    assert torch.equal(out[0, :4], torch.zeros_like(out[0, :4]))
    torch.testing.assert_close(out, ref, **TOL[torch.float32])
    # The same mask as the plan encodes it: int64-max key positions, no key_mask operand.
    hidden = (*args[:6], _masked_key_positions(k_pos, key_mask))
    plain = {**kw, "rope_layout": "none"}
    out_none = A._run(A.plan_decoupled_attention(*hidden, None, None, None, **plain, config=config))
    torch.testing.assert_close(out_none, _mask_ref_prefill(args, None, None, key_mask, plain))


# --------------------------------------------------------------------------------------------
# mla.cache_update


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["none", "interleaved", "rotate_half"])
@pytest.mark.parametrize("paged", [False, True])
def test_cache_update_value_and_in_place(dtype: torch.dtype, layout: str, paged: bool) -> None:
    g = _gen(21)
    b, s, slots, e, dr = 2, 5, 32, 48, 16
    cache = _randn(g, b, slots, e, dtype=dtype)
    entries = _randn(g, b, s, e, dtype=dtype)
    positions = torch.stack([torch.randperm(slots, generator=g)[:s] for _ in range(b)])
    positions = positions.to(DEVICE)
    cos, sin = _tables(layout, dr)
    ref = sem.cache_update(cache, entries, positions, cos, sin, rope_layout=layout)
    if paged:
        pool, table = _paged(cache, 8, g)
        before = pool.clone()
        # value form: a new pool, the caller's untouched
        value = A.cache_update(pool, entries, positions, cos, sin, table, rope_layout=layout)
        assert value is not pool and torch.equal(pool, before)
        out = A.cache_update_(pool, entries, positions, cos, sin, table, rope_layout=layout)
        assert out is pool and torch.equal(value, pool)
        logical = pool[table.long()].reshape(b, slots, e)
    else:
        target = cache.clone()
        value = A.cache_update(target, entries, positions, cos, sin, rope_layout=layout)
        assert value is not target and torch.equal(target, cache)
        out = A.cache_update_(target, entries, positions, cos, sin, rope_layout=layout)
        assert out is target and torch.equal(value, target)
        logical = out
    # fp32 -> bf16 of the rotated part truncates under the interpreter (1 ulp).
    exact = dtype == torch.float32 or layout == "none" or not INTERPRETED
    torch.testing.assert_close(logical, ref, **({"atol": 0, "rtol": 0} if exact else TOL[dtype]))
    if paged:
        assert (pool[0] == 1e4).all()  # scratch block untouched


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("paged", [False, True])
def test_norm_cache_update_is_norm_cat_update(dtype: torch.dtype, paged: bool) -> None:
    """`triton.norm_cache_update` = ``rms_norm`` of the latent channels, ``cat`` with the
    rotary ones, `mla.cache_update` (value and in-place forms)."""
    g = _gen(23)
    b, s, slots, c, dr = 2, 5, 32, 32, 16
    cache = _randn(g, b, slots, c + dr, dtype=dtype)
    kv = _randn(g, b, s, c + dr, dtype=dtype)
    weight = _randn(g, c, dtype=dtype)
    positions = torch.stack([torch.randperm(slots, generator=g)[:s] for _ in range(b)])
    positions = positions.to(DEVICE)
    cos, sin = _tables("interleaved", dr)
    entries = torch.cat([sem.rms_norm(kv[..., :c], weight, eps=1e-6), kv[..., c:]], -1)
    ref = sem.cache_update(cache, entries, positions, cos, sin, rope_layout="interleaved")
    kw = {"eps": 1e-6, "rope_layout": "interleaved"}
    target, table = _paged(cache, 8, g) if paged else (cache.clone(), None)
    before = target.clone()
    value = A.norm_cache_update(target, kv, weight, positions, cos, sin, table, **kw)
    assert value is not target and torch.equal(target, before)
    out = A.norm_cache_update_(target, kv, weight, positions, cos, sin, table, **kw)
    assert out is target and torch.equal(value, target)
    logical = target[table.long()].reshape(b, slots, c + dr) if paged else target
    torch.testing.assert_close(logical, ref, **TOL[dtype])


def test_cache_update_drops_positions_outside_the_cache() -> None:
    g = _gen(22)
    cache = _randn(g, 1, 8, 16)
    before = cache.clone()
    entries = _randn(g, 1, 3, 16)
    positions = torch.tensor([[-1, 8, 2]], device=DEVICE)
    A.cache_update_(cache, entries, positions)
    before[0, 2] = entries[0, 2]
    assert torch.equal(cache, before)


# --------------------------------------------------------------------------------------------
# the kernel table


@pytest.mark.parametrize("op", sorted(A.KERNELS))
def test_kernel_signatures_follow_the_semantics(op: str) -> None:
    """Same operands in the same order, same keyword attributes; the contract's optional
    operands (block_table, key_mask) may follow the semantics' operands."""
    from mlacc.runtime.semantics import registry

    mine = inspect.signature(A.KERNELS[op]).parameters
    ref = inspect.signature(registry.get(op)).parameters

    def split(params: Any) -> tuple[list[str], list[str]]:
        pos = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
        kw = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
        return pos, kw

    (my_pos, my_kw), (ref_pos, ref_kw) = split(mine), split(ref)
    assert my_pos[: len(ref_pos)] == ref_pos
    assert set(my_pos[len(ref_pos) :]) <= {"block_table", "key_mask"}
    assert set(my_kw) == set(ref_kw) - {"block_table", "key_mask"}


# --------------------------------------------------------------------------------------------
# compile-only (no GPU) and GPU checks


@pytest.mark.slow
def test_kernels_compile_for_sm90_without_spills() -> None:
    """DeepSeek-V3 shapes (H=128, C=512, dr=64, bf16) AOT-compile for sm_90; no register spill."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    cmd = [sys.executable, "-m", "mlacc.runtime.triton._attention_aot", "--arch", "90"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    kernels = {r["kernel"] for r in rows}
    assert kernels == {
        "latent_attention_kernel",
        "lse_combine_kernel",
        "decoupled_attention_kernel",
        "cache_update_kernel",
    }
    for r in rows:
        assert r["STACK"] == 0 and r["LOCAL"] == 0, r
        assert r["REG"] <= 255, r


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("paged", [False, True])
def test_latent_attention_v3_shapes_on_gpu(paged: bool) -> None:
    g = _gen(31)
    b, h, c, dr, slots = 4, 128, 512, 64, 2048
    q = _randn(g, b, 1, h, c, dtype=torch.bfloat16)
    q_pe = _randn(g, b, 1, h, dr, dtype=torch.bfloat16)
    cache = _randn(g, b, slots, c + dr, dtype=torch.bfloat16)
    positions = torch.tensor([[0], [100], [1500], [slots - 1]], device=DEVICE)
    cos, sin = _tables("interleaved", dr, slots)
    kw = {"kv_lora_rank": c, "softmax_scale": 0.07, "rope_layout": "interleaved"}
    pool, table = _paged(cache, 64, g) if paged else (cache, None)
    out = A.latent_attention(q, q_pe, pool, positions, cos, sin, table, **kw)
    ref = sem.latent_attention(q, q_pe, cache, positions, cos, sin, **kw)
    torch.testing.assert_close(out, ref, **TOL[torch.bfloat16])


@pytest.mark.gpu
@requires_cuda
def test_decoupled_attention_v3_shapes_on_gpu() -> None:
    _, args = _prefill_inputs(32, torch.bfloat16, b=1, s=300, t=300, h=4, dn=128, dr=64, dv=128)
    args = (*args[:5], args[6], args[6])  # causal: query i at position i
    cos, sin = _tables("interleaved", 64, 512)
    kw = {"softmax_scale": 0.07, "rope_layout": "interleaved"}
    out = A.decoupled_attention(*args, cos, sin, **kw)
    torch.testing.assert_close(
        out, sem.decoupled_attention(*args, cos, sin, **kw), **TOL[torch.bfloat16]
    )
