"""Test fixture: a DeepSeek-V3 model laid out like the public inference code.

This file mirrors the module layout, attribute names and calling convention of
``inference/model.py`` in github.com/deepseek-ai/DeepSeek-V3 (``ModelArgs``,
``precompute_freqs_cis``, ``apply_rotary_emb``, ``RMSNorm``, ``MLA``, ``MLP``, ``Gate``,
``Expert``, ``MoE``, ``Block``, ``Transformer``) so that tests can check that mlacc's
``public`` adapter captures such a model. It is written for the tests, in the same style, not
copied; what differs, on purpose:

- single process (world_size 1): no ``ParallelEmbedding``/``ColumnParallelLinear``/
  ``RowParallelLinear`` sharding, no ``torch.distributed``;
- no custom kernels: ``Linear`` is a plain ``F.linear`` over a weight in the default dtype
  (no fp8 weights, no ``act_quant``/``fp8_gemm``/``weight_dequant``);
- the gate bias exists when ``ModelArgs.gate_bias`` says so (default: as in the public code,
  when ``dim == 7168``), so that tiny configs can have a V3-style biased router;
- only the ``absorb`` attention implementation (latent ``kv_cache`` + ``pe_cache``);
- the causal mask also covers the cached prefix, so a multi-token call at ``start_pos > 0``
  (chunked prefill) works; for ``start_pos == 0`` or one token it is the public code's mask;
- ``init_weights`` gives random weights (the public code loads a checkpoint instead).

Like the public code, the model is stateful: ``forward(tokens, start_pos)`` writes the new
tokens' latent entries into per-layer cache buffers at ``start_pos`` and attends over
``[0, start_pos + seqlen)``; it returns the logits of the last position, ``[B, vocab]``.
The MoE dispatches with ``torch.bincount(...).tolist()`` and a Python loop over experts, which
plain ``torch.export`` cannot trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

attn_impl: Literal["absorb"] = "absorb"


@dataclass
class ModelArgs:
    """Model hyperparameters (field names and defaults as in the public ``ModelArgs``)."""

    max_batch_size: int = 8
    max_seq_len: int = 4096 * 4
    vocab_size: int = 102400
    dim: int = 2048
    inter_dim: int = 10944
    moe_inter_dim: int = 1408
    n_layers: int = 27
    n_dense_layers: int = 1
    n_heads: int = 16
    # moe
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    n_activated_experts: int = 6
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: Literal["softmax", "sigmoid"] = "softmax"
    route_scale: float = 1.0
    gate_bias: bool | None = None  # None: as the public code, a bias iff dim == 7168
    # mla
    q_lora_rank: int = 0
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    # yarn
    original_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_factor: float = 40
    beta_fast: int = 32
    beta_slow: int = 1
    mscale: float = 1.0


class Linear(nn.Module):
    """``y = x W^T`` with a bias-free weight ``[out_features, in_features]``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class ParallelEmbedding(nn.Module):
    """Token embedding (the public code's name; one shard here)."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(x, self.weight)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (self.dim,), self.weight, self.eps)


def precompute_freqs_cis(args: ModelArgs) -> torch.Tensor:
    """``e^{i t f_k}`` for positions ``t < max_seq_len``: complex ``[max_seq_len, rope/2]``.

    With ``max_seq_len > original_seq_len`` the frequencies get YaRN's correction: dims whose
    wavelength lies between ``beta_fast`` and ``beta_slow`` rotations of the original context
    (floored/ceiled to whole dims) blend linearly from ``f`` to ``f / rope_factor``.
    """
    dim, base, factor = args.qk_rope_head_dim, args.rope_theta, args.rope_factor

    def correction_dim(rotations: float) -> float:
        turns = args.original_seq_len / (rotations * 2 * math.pi)
        return dim * math.log(turns) / (2 * math.log(base))

    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if args.max_seq_len > args.original_seq_len:
        low = max(math.floor(correction_dim(args.beta_fast)), 0)
        high = min(math.ceil(correction_dim(args.beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
        smooth = 1 - ramp
        freqs = freqs / factor * (1 - smooth) + freqs * smooth
    angles = torch.outer(torch.arange(args.max_seq_len), freqs)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary_emb(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotates channel pairs ``(2i, 2i+1)`` of ``x [B, S, H, d]`` as complex numbers."""
    dtype = x.dtype
    x = torch.view_as_complex(x.float().view(*x.shape[:-1], -1, 2))
    freqs_cis = freqs_cis.view(1, x.size(1), 1, x.size(-1))
    return torch.view_as_real(x * freqs_cis).flatten(3).to(dtype)


class MLA(nn.Module):
    """Multi-head latent attention with the absorbed latent cache (``attn_impl = "absorb"``)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.dim = args.dim
        self.n_heads = args.n_heads
        self.n_local_heads = args.n_heads
        self.q_lora_rank = args.q_lora_rank
        self.kv_lora_rank = args.kv_lora_rank
        self.qk_nope_head_dim = args.qk_nope_head_dim
        self.qk_rope_head_dim = args.qk_rope_head_dim
        self.qk_head_dim = args.qk_nope_head_dim + args.qk_rope_head_dim
        self.v_head_dim = args.v_head_dim

        if self.q_lora_rank == 0:
            self.wq = Linear(self.dim, self.n_heads * self.qk_head_dim)
        else:
            self.wq_a = Linear(self.dim, self.q_lora_rank)
            self.q_norm = RMSNorm(self.q_lora_rank)
            self.wq_b = Linear(self.q_lora_rank, self.n_heads * self.qk_head_dim)
        self.wkv_a = Linear(self.dim, self.kv_lora_rank + self.qk_rope_head_dim)
        self.kv_norm = RMSNorm(self.kv_lora_rank)
        self.wkv_b = Linear(
            self.kv_lora_rank, self.n_heads * (self.qk_nope_head_dim + self.v_head_dim)
        )
        self.wo = Linear(self.n_heads * self.v_head_dim, self.dim)
        self.softmax_scale = self.qk_head_dim**-0.5
        if args.max_seq_len > args.original_seq_len:
            mscale = 0.1 * args.mscale * math.log(args.rope_factor) + 1.0
            self.softmax_scale = self.softmax_scale * mscale * mscale

        self.register_buffer(
            "kv_cache",
            torch.zeros(args.max_batch_size, args.max_seq_len, self.kv_lora_rank),
            persistent=False,
        )
        self.register_buffer(
            "pe_cache",
            torch.zeros(args.max_batch_size, args.max_seq_len, self.qk_rope_head_dim),
            persistent=False,
        )

    def forward(
        self, x: torch.Tensor, start_pos: int, freqs_cis: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        bsz, seqlen, _ = x.size()
        end_pos = start_pos + seqlen
        q = self.wq(x) if self.q_lora_rank == 0 else self.wq_b(self.q_norm(self.wq_a(x)))
        q = q.view(bsz, seqlen, self.n_local_heads, self.qk_head_dim)
        q_nope, q_pe = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        q_pe = apply_rotary_emb(q_pe, freqs_cis)
        kv = self.wkv_a(x)
        kv, k_pe = torch.split(kv, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_pe = apply_rotary_emb(k_pe.unsqueeze(2), freqs_cis)

        # absorb: q_nope · W_UK,h goes into the latent space; the cache holds latents + k_pe
        wkv_b = self.wkv_b.weight.view(self.n_local_heads, -1, self.kv_lora_rank)
        q_nope = torch.einsum("bshd,hdc->bshc", q_nope, wkv_b[:, : self.qk_nope_head_dim])
        self.kv_cache[:bsz, start_pos:end_pos] = self.kv_norm(kv)
        self.pe_cache[:bsz, start_pos:end_pos] = k_pe.squeeze(2)
        scores = (
            torch.einsum("bshc,btc->bsht", q_nope, self.kv_cache[:bsz, :end_pos])
            + torch.einsum("bshr,btr->bsht", q_pe, self.pe_cache[:bsz, :end_pos])
        ) * self.softmax_scale
        if mask is not None:
            scores += mask.unsqueeze(1)
        scores = scores.softmax(dim=-1, dtype=torch.float32).type_as(x)
        x = torch.einsum("bsht,btc->bshc", scores, self.kv_cache[:bsz, :end_pos])
        x = torch.einsum("bshc,hdc->bshd", x, wkv_b[:, -self.v_head_dim :])
        return self.wo(x.flatten(2))


class MLP(nn.Module):
    """SwiGLU feed-forward ``w2(silu(w1 x) * w3 x)`` (dense layers and shared experts)."""

    def __init__(self, dim: int, inter_dim: int) -> None:
        super().__init__()
        self.w1 = Linear(dim, inter_dim)
        self.w2 = Linear(inter_dim, dim)
        self.w3 = Linear(dim, inter_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Gate(nn.Module):
    """Router: sigmoid/softmax scores, optional bias for selection, group-limited top-k."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.dim = args.dim
        self.topk = args.n_activated_experts
        self.n_groups = args.n_expert_groups
        self.topk_groups = args.n_limited_groups
        self.score_func = args.score_func
        self.route_scale = args.route_scale
        self.weight = nn.Parameter(torch.empty(args.n_routed_experts, args.dim))
        has_bias = self.dim == 7168 if args.gate_bias is None else args.gate_bias
        self.bias = nn.Parameter(torch.empty(args.n_routed_experts)) if has_bias else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = F.linear(x, self.weight)
        if self.score_func == "softmax":
            scores = scores.softmax(dim=-1, dtype=torch.float32)
        else:
            scores = scores.sigmoid()
        original_scores = scores
        if self.bias is not None:
            scores = scores + self.bias
        if self.n_groups > 1:
            scores = scores.view(x.size(0), self.n_groups, -1)
            if self.bias is None:
                group_scores = scores.amax(dim=-1)
            else:
                group_scores = scores.topk(2, dim=-1)[0].sum(dim=-1)
            indices = group_scores.topk(self.topk_groups, dim=-1)[1]
            mask = scores.new_ones(x.size(0), self.n_groups, dtype=torch.bool)
            mask = mask.scatter_(1, indices, False)
            scores = scores.masked_fill(mask.unsqueeze(-1), float("-inf")).flatten(1)
        indices = torch.topk(scores, self.topk, dim=-1)[1]
        weights = original_scores.gather(1, indices)
        if self.score_func == "sigmoid":
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights * self.route_scale
        return weights.type_as(x), indices


class Expert(nn.Module):
    """One routed expert (a SwiGLU MLP)."""

    def __init__(self, dim: int, inter_dim: int) -> None:
        super().__init__()
        self.w1 = Linear(dim, inter_dim)
        self.w2 = Linear(inter_dim, dim)
        self.w3 = Linear(dim, inter_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoE(nn.Module):
    """Routed experts (data-dependent Python dispatch loop) plus shared experts."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.dim = args.dim
        self.n_routed_experts = args.n_routed_experts
        self.n_local_experts = args.n_routed_experts
        self.n_activated_experts = args.n_activated_experts
        self.experts_start_idx = 0
        self.experts_end_idx = self.n_routed_experts
        self.gate = Gate(args)
        self.experts = nn.ModuleList(
            [Expert(args.dim, args.moe_inter_dim) for _ in range(self.n_routed_experts)]
        )
        self.shared_experts = MLP(args.dim, args.n_shared_experts * args.moe_inter_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.size()
        x = x.view(-1, self.dim)
        weights, indices = self.gate(x)
        y = torch.zeros_like(x)
        counts = torch.bincount(indices.flatten(), minlength=self.n_routed_experts).tolist()
        for i in range(self.experts_start_idx, self.experts_end_idx):
            if counts[i] == 0:
                continue
            expert = self.experts[i]
            idx, top = torch.where(indices == i)
            y[idx] += expert(x[idx]) * weights[idx, top, None]
        z = self.shared_experts(x)
        return (y + z).view(shape)


class Block(nn.Module):
    """Pre-norm layer: attention then MLP (first ``n_dense_layers``) or MoE."""

    def __init__(self, layer_id: int, args: ModelArgs) -> None:
        super().__init__()
        self.attn = MLA(args)
        self.ffn = MLP(args.dim, args.inter_dim) if layer_id < args.n_dense_layers else MoE(args)
        self.attn_norm = RMSNorm(args.dim)
        self.ffn_norm = RMSNorm(args.dim)

    def forward(
        self, x: torch.Tensor, start_pos: int, freqs_cis: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), start_pos, freqs_cis, mask)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """Causal LM: ``forward(tokens [B, S], start_pos=0) -> logits [B, vocab]`` (last position)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.max_seq_len = args.max_seq_len
        self.embed = ParallelEmbedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList([Block(layer_id, args) for layer_id in range(args.n_layers)])
        self.norm = RMSNorm(args.dim)
        self.head = Linear(args.dim, args.vocab_size)
        self.register_buffer("freqs_cis", precompute_freqs_cis(args), persistent=False)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        seqlen = tokens.size(1)
        h = self.embed(tokens)
        freqs_cis = self.freqs_cis[start_pos : start_pos + seqlen]
        mask = None
        if seqlen > 1:
            mask = torch.full((seqlen, start_pos + seqlen), float("-inf"), device=tokens.device)
            mask = mask.triu_(start_pos + 1)
        for layer in self.layers:
            h = layer(h, start_pos, freqs_cis, mask)
        h = self.norm(h)[:, -1]
        return self.head(h)


@torch.no_grad()
def init_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights with unit-scale activations (the public code loads a checkpoint)."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, Gate):
            module.weight.normal_(0.0, module.dim**-0.5, generator=gen)
            if module.bias is not None:
                module.bias.normal_(0.0, 0.05, generator=gen)
        elif isinstance(module, Linear):
            module.weight.normal_(0.0, module.in_features**-0.5, generator=gen)
        elif isinstance(module, ParallelEmbedding):
            module.weight.normal_(0.0, 1.0, generator=gen)
    return model


def tiny_args(**overrides: object) -> ModelArgs:
    """A tiny DeepSeek-V3-like config: q low-rank, YaRN, sigmoid + bias, grouped routing.

    ``rope_theta`` 100 with 32 original positions puts YaRN's ramp across a few of the 8
    frequency pairs (with V3's 10000/4096 a 16-dim rotary part would hardly see it).
    """
    values: dict[str, object] = dict(
        max_batch_size=2,
        max_seq_len=64,
        vocab_size=128,
        dim=32,
        inter_dim=64,
        moe_inter_dim=16,
        n_layers=3,
        n_dense_layers=1,
        n_heads=2,
        n_routed_experts=8,
        n_shared_experts=1,
        n_activated_experts=2,
        n_expert_groups=4,
        n_limited_groups=2,
        score_func="sigmoid",
        route_scale=2.5,
        gate_bias=True,
        q_lora_rank=24,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=16,
        v_head_dim=8,
        original_seq_len=32,
        rope_theta=100.0,
        rope_factor=4.0,
        beta_fast=32,
        beta_slow=1,
        mscale=1.0,
    )
    values.update(overrides)
    return ModelArgs(**values)  # type: ignore[arg-type]
