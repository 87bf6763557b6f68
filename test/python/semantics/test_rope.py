"""RoPE/YaRN tables and `mla.rotary_embedding` against Hugging Face and DeepSeek's public code."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import DeepseekV2Config, DeepseekV3Config
from transformers.models.deepseek_v2.modeling_deepseek_v2 import (
    DeepseekV2RotaryEmbedding,
)
from transformers.models.deepseek_v2.modeling_deepseek_v2 import (
    apply_rotary_emb as hf_v2_apply_rotary_emb,
)
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
    DeepseekV3RotaryEmbedding,
    apply_rotary_pos_emb,
    apply_rotary_pos_emb_interleave,
)

from mlacc.runtime.semantics import get, rope

ROTARY = get("mla.rotary_embedding")
DR = 16

# (factor, original_seq_len, beta_fast, beta_slow, mscale, mscale_all_dim, truncate)
YARN_CASES = [
    (40.0, 64, 32.0, 1.0, 1.0, 1.0, True),  # DeepSeek-V3's settings at a tiny context
    (4.0, 32, 32.0, 1.0, 0.707, 1.0, True),  # attention_factor != 1
    (8.0, 128, 16.0, 2.0, 1.0, 0.0, False),  # untruncated ramp; attention_factor from factor
]


def _v3_config(yarn: tuple | None, interleave: bool = True) -> DeepseekV3Config:
    params: dict = {"rope_type": "default", "rope_theta": 10000.0}
    max_pos = 512
    if yarn is not None:
        factor, orig, fast, slow, mscale, mscale_all_dim, truncate = yarn
        params = {
            "rope_type": "yarn",
            "rope_theta": 10000.0,
            "factor": factor,
            "original_max_position_embeddings": orig,
            "beta_fast": fast,
            "beta_slow": slow,
            "mscale": mscale,
            "mscale_all_dim": mscale_all_dim,
            "truncate": truncate,
        }
        max_pos = int(orig * factor)
    return DeepseekV3Config(
        hidden_size=64,
        num_attention_heads=4,
        qk_rope_head_dim=DR,
        qk_nope_head_dim=16,
        v_head_dim=16,
        max_position_embeddings=max_pos,
        rope_parameters=params,
        rope_interleave=interleave,
    )


def _rope_attr(make_rope, yarn: tuple | None, layout: str, cos_sin_scale: float = 1.0) -> dict:
    if yarn is None:
        return make_rope(layout=layout, cos_sin_scale=cos_sin_scale)
    factor, orig, fast, slow, _, _, truncate = yarn
    return make_rope(
        layout=layout,
        factor=factor,
        original_seq_len=orig,
        beta_fast=fast,
        beta_slow=slow,
        truncate=truncate,
        cos_sin_scale=cos_sin_scale,
    )


def _deinterleave(x: torch.Tensor) -> torch.Tensor:
    """The permutation P = [0, 2, 4, ..., 1, 3, 5, ...] on the last dim."""
    return torch.cat((x[..., 0::2], x[..., 1::2]), dim=-1)


@pytest.mark.parametrize("yarn", [None, *YARN_CASES])
def test_inv_freq_and_scale_match_hf(make_rope, yarn: tuple | None) -> None:
    hf = DeepseekV3RotaryEmbedding(_v3_config(yarn))
    ours = rope.inv_freq(_rope_attr(make_rope, yarn, "rotate_half"), DR)
    torch.testing.assert_close(ours, hf.inv_freq, rtol=1e-6, atol=0)
    if yarn is not None:  # the YaRN blend really changed something
        assert not torch.allclose(ours, rope.inv_freq(make_rope(), DR))


@pytest.mark.parametrize("yarn", [None, *YARN_CASES])
@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("heads", [None, 3])
def test_rotary_embedding_matches_hf_v3(make_rope, yarn, interleave: bool, heads) -> None:
    """rotate_half == HF apply_rotary_pos_emb; HF's interleave == P(our interleaved)."""
    config = _v3_config(yarn, interleave)
    hf_rope = DeepseekV3RotaryEmbedding(config)
    b, s = 2, 9
    positions = torch.randint(0, config.max_position_embeddings, (b, s))
    shape = (b, s, DR) if heads is None else (b, s, heads, DR)
    x = torch.randn(shape)
    cos, sin = hf_rope(x, positions)  # [B, S, DR] = cat(freqs, freqs) * attention_scaling
    hf_x = x.unsqueeze(1) if heads is None else x.transpose(1, 2)  # HF puts heads on dim 1
    if interleave:
        expected, _ = apply_rotary_pos_emb_interleave(hf_x, hf_x, cos, sin)
    else:
        expected, _ = apply_rotary_pos_emb(hf_x, hf_x, cos, sin)
    expected = expected.squeeze(1) if heads is None else expected.transpose(1, 2)

    layout = "interleaved" if interleave else "rotate_half"
    attr = _rope_attr(make_rope, yarn, layout, cos_sin_scale=hf_rope.attention_scaling)
    ours = ROTARY(x, positions, rope=attr)
    if interleave:
        ours = _deinterleave(ours)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("yarn", [None, *YARN_CASES[:2]])
def test_interleaved_matches_hf_v2(make_rope, yarn) -> None:
    """DeepSeek-V2 on Hugging Face: complex-pair rotation, freqs_cis scaled by attention_scaling."""
    params = {"rope_type": "default", "rope_theta": 10000.0}
    if yarn is not None:
        factor, orig, fast, slow, mscale, mscale_all_dim, truncate = yarn
        params = {
            "rope_type": "yarn",
            "rope_theta": 10000.0,
            "factor": factor,
            "original_max_position_embeddings": orig,
            "beta_fast": fast,
            "beta_slow": slow,
            "mscale": mscale,
            "mscale_all_dim": mscale_all_dim,
            "truncate": truncate,
        }
    config = DeepseekV2Config(
        hidden_size=64,
        num_attention_heads=4,
        qk_rope_head_dim=DR,
        max_position_embeddings=256,
        rope_parameters=params,
    )
    hf_rope = DeepseekV2RotaryEmbedding(config)
    b, s, h = 2, 7, 3
    positions = torch.randint(0, 256, (b, s))
    q = torch.randn(b, h, s, DR)
    freqs_cis = hf_rope(q, positions)
    expected, _ = hf_v2_apply_rotary_emb(q, q, freqs_cis)
    attr = _rope_attr(make_rope, yarn, "interleaved", cos_sin_scale=hf_rope.attention_scaling)
    ours = ROTARY(q.transpose(1, 2), positions, rope=attr).transpose(1, 2)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("factor", "orig", "max_seq_len"),
    [(1.0, 4096, 64), (40.0, 16, 160), (4.0, 32, 128)],
)
def test_matches_public_deepseek_code(make_rope, public_rope, factor, orig, max_seq_len) -> None:
    """interleaved == apply_rotary_emb(precompute_freqs_cis); rotate_half(P x) == P(that)."""
    args = SimpleNamespace(
        qk_rope_head_dim=DR,
        max_seq_len=max_seq_len,
        beta_fast=32,
        beta_slow=1,
        rope_theta=10000.0,
        rope_factor=factor,
        original_seq_len=orig,
    )
    freqs_cis = public_rope.precompute_freqs_cis(args)
    start, s, b, h = 5, 11, 2, 3
    x = torch.randn(b, s, h, DR)
    expected = public_rope.apply_rotary_emb(x, freqs_cis[start : start + s])
    positions = torch.arange(start, start + s).expand(b, s)
    attr = make_rope(factor=factor, original_seq_len=orig)
    torch.testing.assert_close(ROTARY(x, positions, rope=attr), expected, rtol=1e-5, atol=1e-5)
    k = x[:, :, 0]  # the head-shared key part, [B, S, DR]
    k_expected = public_rope.apply_rotary_emb(k.unsqueeze(2), freqs_cis[start : start + s])
    torch.testing.assert_close(
        ROTARY(k, positions, rope=attr), k_expected.squeeze(2), rtol=1e-5, atol=1e-5
    )
    half = make_rope(layout="rotate_half", factor=factor, original_seq_len=orig)
    torch.testing.assert_close(
        ROTARY(_deinterleave(x), positions, rope=half),
        _deinterleave(expected),
        rtol=1e-5,
        atol=1e-5,
    )
    # the tables themselves
    cos, sin = rope.tables(attr, DR, max_seq_len)
    torch.testing.assert_close(cos, freqs_cis.real, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sin, freqs_cis.imag, rtol=1e-5, atol=1e-6)


def test_cos_sin_scale_scales_both(make_rope) -> None:
    positions = torch.arange(6)[None]
    cos1, sin1 = rope.cos_sin(make_rope(), DR, positions)
    cos2, sin2 = rope.cos_sin(make_rope(cos_sin_scale=1.25), DR, positions)
    torch.testing.assert_close(cos2, cos1 * 1.25)
    torch.testing.assert_close(sin2, sin1 * 1.25)


def test_dtype_is_kept_and_math_is_fp32(make_rope) -> None:
    x = torch.randn(2, 5, 4, DR)
    positions = torch.arange(5).expand(2, 5)
    attr = make_rope(factor=40.0, original_seq_len=4)
    y16 = ROTARY(x.to(torch.bfloat16), positions, rope=attr)
    assert y16.dtype == torch.bfloat16
    y32 = ROTARY(x.to(torch.bfloat16).float(), positions, rope=attr)
    torch.testing.assert_close(y16, y32.to(torch.bfloat16), rtol=0, atol=0)


def test_odd_rotary_dim_is_refused(make_rope) -> None:
    with pytest.raises(ValueError, match="even"):
        rope.inv_freq(make_rope(), 7)
