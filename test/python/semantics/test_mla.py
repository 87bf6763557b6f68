"""`mla` semantics: absorbed == un-absorbed, cached decode == full sequence, == eager, == HF."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlacc.runtime.semantics import get

rms_norm = get("mla.rms_norm")
rotary_embedding = get("mla.rotary_embedding")
kv_expand = get("mla.kv_expand")
decoupled_attention = get("mla.decoupled_attention")
absorb_query = get("mla.absorb_query")
latent_attention = get("mla.latent_attention")
absorb_output = get("mla.absorb_output")
cache_update = get("mla.cache_update")
attention = get("mla.attention")

B, S, D, H, DN, DR, DV, C, QL = 2, 7, 32, 4, 16, 8, 16, 32, 24
HEADS = {"num_heads": H, "qk_nope_head_dim": DN, "v_head_dim": DV}
SCALE = (DN + DR) ** -0.5
OPERANDS = ("wkv_a", "kv_norm", "wkv_b", "wo", "wq", "wq_a", "q_norm", "wq_b")


def _attrs(rope: dict, q_lora_rank: int, softmax_scale: float = SCALE) -> dict:
    return {
        "num_heads": H,
        "q_lora_rank": q_lora_rank,
        "kv_lora_rank": C,
        "qk_nope_head_dim": DN,
        "qk_rope_head_dim": DR,
        "v_head_dim": DV,
        "softmax_scale": softmax_scale,
        "eps": 1e-6,
        "rope": rope,
    }


def _call_attention(x, positions, w: dict, attrs: dict, kv_cache=None):
    """Calls mla.attention with the plan interpreter's convention (positional operands)."""
    ops = [w.get(name) for name in OPERANDS]
    return attention(x, positions, *ops, kv_cache, **attrs)


# --- pieces ---


def test_rms_norm() -> None:
    x = torch.randn(3, 5, 40)
    w = torch.randn(40)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    torch.testing.assert_close(rms_norm(x, w, eps=1e-5), expected)
    y = rms_norm(x.to(torch.bfloat16), w, eps=1e-5)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), expected, rtol=1e-2, atol=1e-2)


def test_cache_update_writes_rows_at_positions() -> None:
    cache = torch.randn(2, 10, 6)
    entries = torch.randn(2, 3, 6)
    positions = torch.tensor([[0, 4, 9], [7, 2, 3]])
    out = cache_update(cache, entries, positions, rope_layout="none")
    expected = cache.clone()
    for b in range(2):
        for i in range(3):
            expected[b, positions[b, i]] = entries[b, i]
    assert torch.equal(out, expected)
    assert not torch.equal(out, cache)  # value semantics: the input is untouched
    with pytest.raises(ValueError, match="positions"):
        cache_update(cache, entries, positions + 1, rope_layout="none")


def test_kv_expand_splits_wkv_b_per_head() -> None:
    latent = torch.randn(B, 5, C)
    wkv_b = torch.randn(H * (DN + DV), C)
    k_nope, v = kv_expand(latent, wkv_b, **HEADS)
    assert k_nope.shape == (B, 5, H, DN) and v.shape == (B, 5, H, DV)
    full = (latent @ wkv_b.T).view(B, 5, H, DN + DV)
    torch.testing.assert_close(k_nope, full[..., :DN])
    torch.testing.assert_close(v, full[..., DN:])


@pytest.mark.parametrize("cache_slots", [12, 20])
def test_absorbed_equals_unabsorbed(rel_err, cache_slots: int) -> None:
    """absorb_query -> latent_attention (cache from cache_update) -> absorb_output
    == kv_expand -> decoupled_attention."""
    t = 12
    q_nope, q_pe = torch.randn(B, S, H, DN), torch.randn(B, S, H, DR)
    latent, k_pe = torch.randn(B, t, C), torch.randn(B, t, DR)
    wkv_b = torch.randn(H * (DN + DV), C) / math.sqrt(C)
    k_positions = torch.arange(t).expand(B, t)
    q_positions = torch.stack([torch.randperm(t)[:S] for _ in range(B)])  # causal, varied

    k_nope, v = kv_expand(latent, wkv_b, **HEADS)
    expected = decoupled_attention(
        q_nope,
        q_pe,
        k_nope,
        k_pe,
        v,
        q_positions,
        k_positions,
        softmax_scale=0.3,
        rope_layout="none",
    )

    cache = torch.zeros(B, cache_slots, C + DR)
    cache = cache_update(cache, torch.cat([latent, k_pe], -1), k_positions, rope_layout="none")
    q_latent = absorb_query(q_nope, wkv_b, **HEADS)
    ctx = latent_attention(
        q_latent, q_pe, cache, q_positions, kv_lora_rank=C, softmax_scale=0.3, rope_layout="none"
    )
    out = absorb_output(ctx, wkv_b, **HEADS)
    assert q_latent.shape == (B, S, H, C) and ctx.shape == (B, S, H, C)
    assert out.shape == expected.shape == (B, S, H, DV)
    assert rel_err(out, expected) < 1e-5


def test_decoupled_attention_masks_by_positions() -> None:
    """Keys past the query's position get no weight: changing them changes nothing."""
    q_nope, q_pe = torch.randn(1, 3, H, DN), torch.randn(1, 3, H, DR)
    k_nope, k_pe, v = torch.randn(1, 6, H, DN), torch.randn(1, 6, DR), torch.randn(1, 6, H, DV)
    q_pos = torch.tensor([[1, 3, 5]])
    k_pos = torch.arange(6)[None]
    out = decoupled_attention(
        q_nope, q_pe, k_nope, k_pe, v, q_pos, k_pos, softmax_scale=SCALE, rope_layout="none"
    )
    v2 = v.clone()
    v2[:, 4:] += 100
    out2 = decoupled_attention(
        q_nope, q_pe, k_nope, k_pe, v2, q_pos, k_pos, softmax_scale=SCALE, rope_layout="none"
    )
    torch.testing.assert_close(out[:, :2], out2[:, :2])
    assert not torch.allclose(out[:, 2], out2[:, 2])
    # a query at position 0 sees exactly key 0
    out0 = decoupled_attention(
        q_nope,
        q_pe,
        k_nope,
        k_pe,
        v,
        torch.zeros_like(q_pos),
        k_pos,
        softmax_scale=SCALE,
        rope_layout="none",
    )
    torch.testing.assert_close(out0, v[:, :1].expand(1, 3, H, DV))


# --- the whole block ---


def _absorbed_block(x, positions, w, attrs, cache):
    """mla.attention rebuilt from the absorbed pieces (what --mla-absorb-weights produces)."""
    b, s, _ = x.shape
    rope, eps = attrs["rope"], attrs["eps"]
    if attrs["q_lora_rank"]:
        q = F.linear(rms_norm(F.linear(x, w["wq_a"]), w["q_norm"], eps=eps), w["wq_b"])
    else:
        q = F.linear(x, w["wq"])
    q_nope, q_pe = q.view(b, s, H, DN + DR).split([DN, DR], -1)
    q_pe = rotary_embedding(q_pe, positions, rope=rope)
    c_kv, k_pe = F.linear(x, w["wkv_a"]).split([C, DR], -1)
    entries = torch.cat(
        [rms_norm(c_kv, w["kv_norm"], eps=eps), rotary_embedding(k_pe, positions, rope=rope)], -1
    )
    cache = cache_update(cache, entries, positions, rope_layout="none")
    q_latent = absorb_query(q_nope, w["wkv_b"], **HEADS)
    ctx = latent_attention(
        q_latent,
        q_pe,
        cache,
        positions,
        kv_lora_rank=C,
        softmax_scale=attrs["softmax_scale"],
        rope_layout="none",
    )
    o = absorb_output(ctx, w["wkv_b"], **HEADS)
    return F.linear(o.reshape(b, s, H * DV), w["wo"]), cache


@pytest.mark.parametrize("q_lora_rank", [0, QL])
@pytest.mark.parametrize("layout", ["interleaved", "rotate_half"])
def test_attention_equals_absorbed_pieces(
    make_rope, mla_weights, rel_err, q_lora_rank: int, layout: str
) -> None:
    w = mla_weights(dim=D, heads=H, q_lora_rank=q_lora_rank, kv_lora_rank=C, dn=DN, dr=DR, dv=DV)
    rope = make_rope(layout=layout, factor=40.0, original_seq_len=256)
    attrs = _attrs(rope, q_lora_rank)
    x = torch.randn(B, S, D)
    positions = torch.arange(S).expand(B, S)

    out, new_cache = _call_attention(x, positions, w, attrs)
    assert new_cache is None
    absorbed, absorbed_cache = _absorbed_block(x, positions, w, attrs, torch.zeros(B, 16, C + DR))
    assert rel_err(absorbed, out) < 1e-5

    out_c, cache_c = _call_attention(x, positions, w, attrs, torch.zeros(B, 16, C + DR))
    assert rel_err(out_c, out) < 1e-5
    assert rel_err(cache_c, absorbed_cache) < 1e-6


@pytest.mark.parametrize("q_lora_rank", [0, QL])
def test_decode_loop_reproduces_full_sequence(
    make_rope, mla_weights, rel_err, q_lora_rank: int
) -> None:
    w = mla_weights(dim=D, heads=H, q_lora_rank=q_lora_rank, kv_lora_rank=C, dn=DN, dr=DR, dv=DV)
    attrs = _attrs(make_rope(factor=40.0, original_seq_len=256), q_lora_rank)
    total, prefill, slots = 10, 4, 16
    x = torch.randn(B, total, D)
    positions = torch.arange(total).expand(B, total)
    full, _ = _call_attention(x, positions, w, attrs)

    cache = torch.zeros(B, slots, C + DR)
    out, cache = _call_attention(x[:, :prefill], positions[:, :prefill], w, attrs, cache)
    outs = [out]
    for i in range(prefill, total):
        out, cache = _call_attention(x[:, i : i + 1], positions[:, i : i + 1], w, attrs, cache)
        assert cache.shape == (B, slots, C + DR)
        outs.append(out)
    assert rel_err(torch.cat(outs, 1), full) < 1e-5
    assert torch.count_nonzero(cache[:, total:]) == 0
    _, cache_once = _call_attention(x, positions, w, attrs, torch.zeros(B, slots, C + DR))
    assert rel_err(cache, cache_once) < 1e-6


def _eager_mla(x, w, *, q_lora_rank, softmax_scale, eps, theta, factor, orig, fast, slow):
    """MLA straight from the DESIGN math (interleaved RoPE via complex numbers), float64,
    positions 0..S-1, every head's key materialized as [k_nope; k_pe]."""
    x = x.double()
    w = {k: v.double() for k, v in w.items()}
    s = x.shape[1]

    def norm(t, g):
        return t / torch.sqrt((t * t).mean(-1, keepdim=True) + eps) * g

    # YaRN frequencies, written out
    i = torch.arange(DR // 2, dtype=torch.float64)
    freqs = theta ** (-2 * i / DR)
    if factor != 1.0:

        def dim_of(rot):
            return DR * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(theta))

        low, high = max(math.floor(dim_of(fast)), 0), min(math.ceil(dim_of(slow)), DR - 1)
        high = high + 0.001 if low == high else high
        ramp = ((i - low) / (high - low)).clamp(0, 1)
        freqs = freqs / factor * ramp + freqs * (1 - ramp)
    angle = torch.arange(s, dtype=torch.float64)[:, None] * freqs  # [S, DR/2]
    rot = torch.polar(torch.ones_like(angle), angle)

    def rope(t):  # t [..., S, DR] interleaved pairs
        z = torch.view_as_complex(t.reshape(*t.shape[:-1], DR // 2, 2).contiguous())
        return torch.view_as_real(z * rot).flatten(-2)

    c_q = norm(x @ w["wq_a"].T, w["q_norm"]) if q_lora_rank else x
    q = c_q @ (w["wq_b"] if q_lora_rank else w["wq"]).T
    kv = x @ w["wkv_a"].T
    c_kv, k_pe = norm(kv[..., :C], w["kv_norm"]), rope(kv[..., C:])
    heads = []
    for h in range(H):
        qh = q[..., h * (DN + DR) : (h + 1) * (DN + DR)]
        q_h = torch.cat([qh[..., :DN], rope(qh[..., DN:])], -1)
        w_uk = w["wkv_b"][h * (DN + DV) : h * (DN + DV) + DN]
        w_uv = w["wkv_b"][h * (DN + DV) + DN : (h + 1) * (DN + DV)]
        k_h = torch.cat([c_kv @ w_uk.T, k_pe], -1)
        v_h = c_kv @ w_uv.T
        scores = q_h @ k_h.transpose(-1, -2) * softmax_scale
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        heads.append(scores.softmax(-1) @ v_h)
    return torch.cat(heads, -1) @ w["wo"].T


@pytest.mark.parametrize("q_lora_rank", [0, QL])
@pytest.mark.parametrize(("factor", "orig"), [(1.0, 4096), (40.0, 4096), (40.0, 4)])
def test_attention_matches_eager_math(
    make_rope, mla_weights, rel_err, q_lora_rank: int, factor: float, orig: int
) -> None:
    w = mla_weights(dim=D, heads=H, q_lora_rank=q_lora_rank, kv_lora_rank=C, dn=DN, dr=DR, dv=DV)
    mscale = 0.1 * math.log(factor) + 1.0
    scale = SCALE * mscale * mscale
    x = torch.randn(B, S, D)
    expected = _eager_mla(
        x,
        w,
        q_lora_rank=q_lora_rank,
        softmax_scale=scale,
        eps=1e-6,
        theta=10000.0,
        factor=factor,
        orig=orig,
        fast=32,
        slow=1,
    )
    attrs = _attrs(make_rope(factor=factor, original_seq_len=orig), q_lora_rank, scale)
    out, _ = _call_attention(x, torch.arange(S).expand(B, S), w, attrs)
    assert rel_err(out, expected) < 1e-5


@pytest.mark.parametrize("q_lora_rank", [None, QL])
@pytest.mark.parametrize("interleave", [True, False])
def test_attention_matches_hf_deepseek_v3(
    make_rope, rel_err, q_lora_rank: int | None, interleave: bool
) -> None:
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
        DeepseekV3Attention,
        DeepseekV3RotaryEmbedding,
    )

    config = DeepseekV3Config(
        hidden_size=D,
        num_attention_heads=H,
        num_key_value_heads=H,
        q_lora_rank=q_lora_rank,
        kv_lora_rank=C,
        qk_nope_head_dim=DN,
        qk_rope_head_dim=DR,
        v_head_dim=DV,
        max_position_embeddings=256,
        rope_interleave=interleave,
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "original_max_position_embeddings": 32,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
        },
    )
    config._attn_implementation = "eager"
    hf = DeepseekV3Attention(config, layer_idx=0).eval()
    for p in hf.parameters():
        torch.nn.init.normal_(p, std=0.2)
    hf_rope = DeepseekV3RotaryEmbedding(config)

    x = torch.randn(B, S, D)
    positions = torch.arange(3, 3 + S).expand(B, S)
    mask = torch.full((S, S), float("-inf")).triu(1)[None, None].expand(B, 1, S, S)
    with torch.no_grad():
        expected, _ = hf(x, hf_rope(x, positions), mask)

    w = {
        "wkv_a": hf.kv_a_proj_with_mqa.weight,
        "kv_norm": hf.kv_a_layernorm.weight,
        "wkv_b": hf.kv_b_proj.weight,
        "wo": hf.o_proj.weight,
    }
    if q_lora_rank:
        w |= {"wq_a": hf.q_a_proj.weight, "q_norm": hf.q_a_layernorm.weight}
        w["wq_b"] = hf.q_b_proj.weight
    else:
        w["wq"] = hf.q_proj.weight
    rope = make_rope(
        layout="interleaved" if interleave else "rotate_half",
        factor=8.0,
        original_seq_len=32,
        cos_sin_scale=hf_rope.attention_scaling,
    )
    attrs = _attrs(rope, q_lora_rank or 0, hf.scaling)
    attrs["eps"] = hf.kv_a_layernorm.variance_epsilon
    with torch.no_grad():
        out, _ = _call_attention(x, positions, {k: v.detach() for k, v in w.items()}, attrs)
    assert rel_err(out, expected) < 1e-5


def test_bf16_keeps_dtypes(make_rope, mla_weights) -> None:
    w = mla_weights(dim=D, heads=H, q_lora_rank=QL, kv_lora_rank=C, dn=DN, dr=DR, dv=DV)
    w = {k: v.to(torch.bfloat16) for k, v in w.items()}
    attrs = _attrs(make_rope(), QL)
    x = torch.randn(B, S, D, dtype=torch.bfloat16)
    positions = torch.arange(S).expand(B, S)
    cache = torch.zeros(B, 8, C + DR, dtype=torch.bfloat16)
    out, new_cache = _call_attention(x, positions, w, attrs, cache)
    assert out.dtype == torch.bfloat16 and new_cache.dtype == torch.bfloat16
    ref, _ = _call_attention(x.float(), positions, {k: v.float() for k, v in w.items()}, attrs)
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)
