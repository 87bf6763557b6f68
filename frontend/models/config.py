"""Model configuration of the DeepSeek-V2/V3 reference model, and the named configs.

Field names follow ``ModelArgs`` of DeepSeek-V3's public inference code (``inference/model.py``);
the extra fields say what differs between the V2 and V3 families and the Hugging Face port.

Sources of the published numbers:

- ``deepseek-v3``: ``config.json`` of huggingface.co/deepseek-ai/DeepSeek-V3 (and
  ``inference/configs/config_671B.json`` of github.com/deepseek-ai/DeepSeek-V3): hidden 7168,
  61 layers (``first_k_dense_replace`` 3), 128 heads, q_lora 1536, kv_lora 512, nope/rope/v
  128/64/128, 256 routed experts (8 groups, ``topk_group`` 4, 8 per token), 1 shared,
  moe_intermediate 2048, intermediate 18432, vocab 129280, ``routed_scaling_factor`` 2.5,
  sigmoid scores with ``e_score_correction_bias`` (``noaux_tc``), ``norm_topk_prob`` true,
  yarn factor 40 over 4096 original positions, beta 32/1, mscale = mscale_all_dim = 1.0,
  ``max_position_embeddings`` 163840, ``num_nextn_predict_layers`` 1, rms eps 1e-6.
  Published size: 671B main model + 14B MTP module = 685B (the README of the HF repo).
- ``deepseek-v2-lite``: ``config.json`` of huggingface.co/deepseek-ai/DeepSeek-V2-Lite (and
  ``config_16B.json`` of the inference code): hidden 2048, 27 layers (first 1 dense),
  16 heads, no q low-rank (``q_lora_rank`` null), kv_lora 512, nope/rope/v 128/64/128,
  64 routed experts (greedy, 6 per token), 2 shared, moe_intermediate 1408,
  intermediate 10944, vocab 102400, softmax scores, ``routed_scaling_factor`` 1.0,
  ``norm_topk_prob`` false, yarn factor 40 over 4096, beta 32/1, mscale = mscale_all_dim =
  0.707, ``max_position_embeddings`` 163840. Published size: 15.7B total, 2.4B active.
- ``deepseek-v2``: ``config.json`` of huggingface.co/deepseek-ai/DeepSeek-V2: hidden 5120,
  60 layers (first 1 dense), 128 heads, q_lora 1536, kv_lora 512, 160 routed experts in
  8 groups (``group_limited_greedy``, ``topk_group`` 3, 6 per token), 2 shared,
  moe_intermediate 1536, intermediate 12288, vocab 102400, softmax,
  ``routed_scaling_factor`` 16.0, mscale 0.707. Published size: 236B total, 21B active.

``rope_layout``: ``interleaved`` rotates channel pairs ``(2i, 2i+1)`` (the public inference
code; Hugging Face DeepseekV2, and DeepseekV3 with ``rope_interleave=True``, which is the
default and what the published V3 weights need); ``rotate_half`` rotates ``(i, i + d/2)``
(Hugging Face DeepseekV3 with ``rope_interleave=False``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCORE_FUNCS = ("sigmoid", "softmax")
GROUP_SCORES = ("top2_sum", "max")
ROPE_LAYOUTS = ("interleaved", "rotate_half")


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and options of a DeepSeek-V2/V3 model (defaults = the public ``ModelArgs``)."""

    vocab_size: int = 102400
    dim: int = 2048
    inter_dim: int = 10944
    moe_inter_dim: int = 1408
    n_layers: int = 27
    n_dense_layers: int = 1
    n_heads: int = 16
    # MoE
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    n_activated_experts: int = 6
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: str = "softmax"
    route_scale: float = 1.0
    # MLA
    q_lora_rank: int = 0
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    # YaRN
    original_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_factor: float = 40.0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float = 1.0
    max_seq_len: int = 4096 * 4
    norm_eps: float = 1e-6
    # beyond ModelArgs
    use_correction_bias: bool = False
    group_score: str = "max"
    norm_topk_prob: bool = False
    rope_layout: str = "interleaved"
    n_mtp_layers: int = 0
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"invalid ModelConfig: {msg}")

        if self.score_func not in SCORE_FUNCS:
            bad(f"score_func '{self.score_func}' (expected one of {', '.join(SCORE_FUNCS)})")
        if self.group_score not in GROUP_SCORES:
            bad(f"group_score '{self.group_score}' (expected one of {', '.join(GROUP_SCORES)})")
        if self.rope_layout not in ROPE_LAYOUTS:
            bad(f"rope_layout '{self.rope_layout}' (expected one of {', '.join(ROPE_LAYOUTS)})")
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "kv_lora_rank", "v_head_dim"):
            if getattr(self, name) <= 0:
                bad(f"{name} must be positive, got {getattr(self, name)}")
        if self.qk_rope_head_dim <= 0 or self.qk_rope_head_dim % 2:
            bad(f"qk_rope_head_dim must be positive and even, got {self.qk_rope_head_dim}")
        if self.q_lora_rank < 0:
            bad(f"q_lora_rank must be >= 0 (0 = no low-rank q), got {self.q_lora_rank}")
        if not 0 <= self.n_dense_layers <= self.n_layers:
            bad(f"n_dense_layers {self.n_dense_layers} not in [0, n_layers={self.n_layers}]")
        if self.n_mtp_layers not in (0, 1):
            bad(f"n_mtp_layers must be 0 or 1, got {self.n_mtp_layers}")
        if self.has_moe:
            e, g = self.n_routed_experts, self.n_expert_groups
            if e <= 0 or g <= 0 or e % g:
                bad(f"n_routed_experts {e} must be a positive multiple of n_expert_groups {g}")
            if not 1 <= self.n_limited_groups <= g:
                bad(f"n_limited_groups {self.n_limited_groups} not in [1, n_expert_groups={g}]")
            if not 1 <= self.n_activated_experts <= self.n_limited_groups * (e // g):
                bad(
                    f"n_activated_experts {self.n_activated_experts} not in "
                    f"[1, n_limited_groups * experts per group = "
                    f"{self.n_limited_groups * (e // g)}]"
                )
            if g > 1 and self.group_score == "top2_sum" and e // g < 2:
                bad("group_score 'top2_sum' needs at least 2 experts per group")
            if self.n_shared_experts < 0:
                bad(f"n_shared_experts must be >= 0, got {self.n_shared_experts}")

    @property
    def has_moe(self) -> bool:
        """Whether any layer (main or MTP) is an MoE layer."""
        return self.n_dense_layers < self.n_layers + self.n_mtp_layers

    @property
    def qk_head_dim(self) -> int:
        """Per-head query/key width: ``qk_nope_head_dim + qk_rope_head_dim``."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def uses_yarn(self) -> bool:
        """YaRN is on when the context is extended past the original one (as in ``ModelArgs``)."""
        return self.max_seq_len > self.original_seq_len

    @property
    def attn_mscale(self) -> float:
        """YaRN's ``0.1 * mscale * ln(rope_factor) + 1`` (1 without YaRN or for factor <= 1)."""
        if not self.uses_yarn or self.rope_factor <= 1:
            return 1.0
        return 0.1 * self.mscale * math.log(self.rope_factor) + 1.0

    @property
    def softmax_scale(self) -> float:
        """Attention score scale: ``qk_head_dim ** -0.5 * attn_mscale ** 2``."""
        return self.qk_head_dim**-0.5 * self.attn_mscale**2

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Builds a config from a dict of field values; unknown keys are an error."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {', '.join(unknown)}")
        return cls(**dict(values))


def _yarn_mscale(factor: float, mscale: float) -> float:
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def config_from_hf(hf: Any) -> ModelConfig:
    """Maps a Hugging Face DeepseekV2/V3 config (object or ``config.json`` dict) to ours.

    Reads ``rope_parameters`` (transformers >= 5) or ``rope_scaling`` + ``rope_theta``. Our
    model has no YaRN ``attention_factor`` on cos/sin: that factor is 1 exactly when
    ``mscale == mscale_all_dim`` (all published configs), and ``mscale_all_dim`` is ours.
    """
    get = hf.get if isinstance(hf, Mapping) else (lambda k, d=None: getattr(hf, k, d))
    model_type = get("model_type", "deepseek_v3")
    v3 = model_type != "deepseek_v2"
    rope = dict(get("rope_parameters", None) or get("rope_scaling", None) or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    theta = rope.get("rope_theta", get("rope_theta", 10000.0))
    max_pos = int(get("max_position_embeddings", 4096))
    yarn = rope_type == "yarn"
    if yarn:
        mscale, mscale_all = rope.get("mscale"), rope.get("mscale_all_dim")
        original = int(rope.get("original_max_position_embeddings", max_pos))
        factor = float(rope.get("factor") or max_pos / original)
        cos_sin_factor = rope.get("attention_factor")
        if cos_sin_factor is None:  # as transformers' _compute_yarn_parameters
            cos_sin_factor = (
                _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all)
                if mscale and mscale_all
                else _yarn_mscale(factor, 1.0)
            )
        if abs(cos_sin_factor - 1.0) > 1e-12:
            raise ValueError(
                f"YaRN with a cos/sin attention_factor {cos_sin_factor} != 1 is not supported "
                f"(rope parameters {rope}); use mscale == mscale_all_dim"
            )
        if not rope.get("truncate", True):
            raise ValueError("YaRN with truncate=False is not supported")
        # ours applies YaRN only when max_seq_len > original_seq_len (like ModelArgs)
        max_seq = max(max_pos, original + 1)
    elif rope_type == "default":
        original, factor, mscale_all, max_seq = max_pos, 1.0, 0.0, max_pos
    else:
        raise ValueError(f"rope type '{rope_type}' is not supported (default or yarn)")
    n_groups = get("n_group", None) or 1
    topk_method = get("topk_method", "noaux_tc" if v3 else "greedy")
    q_lora = get("q_lora_rank", None) or 0
    return ModelConfig(
        vocab_size=get("vocab_size"),
        dim=get("hidden_size"),
        inter_dim=get("intermediate_size"),
        moe_inter_dim=get("moe_intermediate_size"),
        n_layers=get("num_hidden_layers"),
        n_dense_layers=min(get("first_k_dense_replace", 0) or 0, get("num_hidden_layers")),
        n_heads=get("num_attention_heads"),
        n_routed_experts=get("n_routed_experts"),
        n_shared_experts=get("n_shared_experts", 0) or 0,
        n_activated_experts=get("num_experts_per_tok"),
        n_expert_groups=n_groups if (v3 or topk_method == "group_limited_greedy") else 1,
        n_limited_groups=(get("topk_group", None) or 1)
        if (v3 or topk_method == "group_limited_greedy")
        else 1,
        score_func="sigmoid" if v3 else "softmax",
        route_scale=float(get("routed_scaling_factor", 1.0)),
        q_lora_rank=q_lora,
        kv_lora_rank=get("kv_lora_rank"),
        qk_nope_head_dim=get("qk_nope_head_dim"),
        qk_rope_head_dim=get("qk_rope_head_dim"),
        v_head_dim=get("v_head_dim"),
        original_seq_len=original,
        rope_theta=float(theta),
        rope_factor=factor,
        beta_fast=float(rope.get("beta_fast") or 32),
        beta_slow=float(rope.get("beta_slow") or 1),
        mscale=float(mscale_all or 0.0) if yarn else 1.0,
        max_seq_len=max_seq,
        norm_eps=float(get("rms_norm_eps", 1e-6)),
        use_correction_bias=v3,
        group_score="top2_sum" if v3 else "max",
        # HF's V2 router never normalizes; V3's follows norm_topk_prob
        norm_topk_prob=bool(get("norm_topk_prob", True)) if v3 else False,
        rope_layout="interleaved" if (not v3 or get("rope_interleave", True)) else "rotate_half",
        n_mtp_layers=min(int(get("num_nextn_predict_layers", 0) or 0), 1),
        tie_word_embeddings=bool(get("tie_word_embeddings", False)),
    )


_V3_TINY = ModelConfig(
    vocab_size=512,
    dim=64,
    inter_dim=128,
    moe_inter_dim=32,
    n_layers=3,
    n_dense_layers=1,
    n_heads=4,
    n_routed_experts=8,
    n_shared_experts=1,
    n_activated_experts=2,
    n_expert_groups=4,
    n_limited_groups=2,
    score_func="sigmoid",
    route_scale=2.5,
    q_lora_rank=32,
    kv_lora_rank=32,
    qk_nope_head_dim=16,
    qk_rope_head_dim=8,
    v_head_dim=16,
    original_seq_len=64,
    rope_theta=10000.0,
    rope_factor=4.0,
    beta_fast=32.0,
    beta_slow=1.0,
    mscale=1.0,
    max_seq_len=256,
    use_correction_bias=True,
    group_score="top2_sum",
    norm_topk_prob=True,
    n_mtp_layers=1,
)

CONFIGS: dict[str, ModelConfig] = {
    # A few layers (1 dense + 2 MoE) + an MTP layer; YaRN on; q low-rank on.
    "deepseek-v3-tiny": _V3_TINY,
    # V2 flavour: softmax scores, no bias, no q low-rank, groups ranked by their max score.
    "deepseek-v2-tiny": _V3_TINY.replace(
        n_shared_experts=2,
        n_expert_groups=2,
        n_limited_groups=1,
        score_func="softmax",
        route_scale=1.0,
        q_lora_rank=0,
        mscale=0.707,
        use_correction_bias=False,
        group_score="max",
        norm_topk_prob=False,
        n_mtp_layers=0,
    ),
    "deepseek-v2-lite": ModelConfig(
        vocab_size=102400,
        dim=2048,
        inter_dim=10944,
        moe_inter_dim=1408,
        n_layers=27,
        n_dense_layers=1,
        n_heads=16,
        n_routed_experts=64,
        n_shared_experts=2,
        n_activated_experts=6,
        n_expert_groups=1,
        n_limited_groups=1,
        score_func="softmax",
        route_scale=1.0,
        q_lora_rank=0,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        original_seq_len=4096,
        rope_theta=10000.0,
        rope_factor=40.0,
        beta_fast=32.0,
        beta_slow=1.0,
        mscale=0.707,
        max_seq_len=163840,
        use_correction_bias=False,
        group_score="max",
        norm_topk_prob=False,
    ),
    "deepseek-v2": ModelConfig(
        vocab_size=102400,
        dim=5120,
        inter_dim=12288,
        moe_inter_dim=1536,
        n_layers=60,
        n_dense_layers=1,
        n_heads=128,
        n_routed_experts=160,
        n_shared_experts=2,
        n_activated_experts=6,
        n_expert_groups=8,
        n_limited_groups=3,
        score_func="softmax",
        route_scale=16.0,
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        original_seq_len=4096,
        rope_theta=10000.0,
        rope_factor=40.0,
        beta_fast=32.0,
        beta_slow=1.0,
        mscale=0.707,
        max_seq_len=163840,
        use_correction_bias=False,
        group_score="max",
        norm_topk_prob=False,
    ),
    "deepseek-v3": ModelConfig(
        vocab_size=129280,
        dim=7168,
        inter_dim=18432,
        moe_inter_dim=2048,
        n_layers=61,
        n_dense_layers=3,
        n_heads=128,
        n_routed_experts=256,
        n_shared_experts=1,
        n_activated_experts=8,
        n_expert_groups=8,
        n_limited_groups=4,
        score_func="sigmoid",
        route_scale=2.5,
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        original_seq_len=4096,
        rope_theta=10000.0,
        rope_factor=40.0,
        beta_fast=32.0,
        beta_slow=1.0,
        mscale=1.0,
        max_seq_len=163840,
        use_correction_bias=True,
        group_score="top2_sum",
        norm_topk_prob=True,
        n_mtp_layers=1,
    ),
}


def get_config(name: str) -> ModelConfig:
    """The named config; an unknown name raises KeyError listing the known ones."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(
            f"unknown model config '{name}'; known: {', '.join(sorted(CONFIGS))}"
        ) from None
