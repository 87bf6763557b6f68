"""DeepSeek-V2/V3 reference model in plain PyTorch (the numerics our compiler is checked against).

Written from the DeepSeek-V2/V3 papers and laid out like the public DeepSeek-V3 inference
code (``inference/model.py``): the same module and attribute names (``embed``,
``layers[i].attn_norm/attn/ffn_norm/ffn``, ``attn.wq_a/q_norm/wq_b | wq, wkv_a, kv_norm,
wkv_b, wo``, ``ffn.w1/w2/w3`` or ``ffn.gate/experts/shared_experts``, ``norm``, ``head``), so
checkpoints converted for that code map 1:1 (see ``checkpoint.py`` for Hugging Face names).

Differences from the public code, all deliberate:

- no KV cache and no tensor parallelism: ``forward`` runs causal attention over the whole
  given sequence (the naive ``attn_impl`` path: per-head K/V are materialized);
- positions are an input: query ``i`` attends to key ``j`` iff ``positions[j] <= positions[i]``
  (plain causal attention for the default ``arange`` positions); rotary tables are computed
  from the config in ``forward`` (nothing to allocate at construction, works on meta);
- router scores and weights in fp32 (as Hugging Face does), experts combined in the
  activation dtype;
- an optional depth-1 MTP layer (``mtp[0]``) that shares ``embed`` and ``head``.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class Linear(nn.Linear):
    """``nn.Linear`` without bias whose weights are left uninitialized at construction.

    Building the 671B model on the meta device creates ~46k of these; the default Kaiming
    init would be wasted work there. ``DeepSeekModel.init_weights`` initializes them.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)

    def reset_parameters(self) -> None:
        """Deliberately empty (see the class docstring)."""


class RMSNorm(nn.Module):
    """Root-mean-square norm: ``x / sqrt(mean(x^2) + eps) * weight`` (fp32 math)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalizes the last dimension of `x`."""
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


# ---------------------------------------------------------------------------------- rotary


def rope_inv_freq(config: ModelConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """The ``qk_rope_head_dim / 2`` inverse frequencies (fp32), YaRN-corrected when on.

    As ``precompute_freqs_cis`` of the public code: ``1 / theta^(2i/d)``; under YaRN (when
    ``max_seq_len > original_seq_len``) the dims whose wavelength lies between ``beta_fast`` and
    ``beta_slow`` turns of ``original_seq_len`` (floored/ceiled) are blended linearly from the
    original frequency to ``freq / rope_factor``.
    """
    dim, base = config.qk_rope_head_dim, config.rope_theta
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim))
    if not config.uses_yarn:
        return freqs

    def correction_dim(num_rotations: float) -> float:
        ratio = config.original_seq_len / (num_rotations * 2 * math.pi)
        return dim * math.log(ratio) / (2 * math.log(base))

    low = max(math.floor(correction_dim(config.beta_fast)), 0)
    high = min(math.ceil(correction_dim(config.beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = (torch.arange(dim // 2, dtype=torch.float32, device=device) - low) / (high - low)
    smooth = 1 - ramp.clamp(0, 1)
    return freqs / config.rope_factor * (1 - smooth) + freqs * smooth


def rope_cos_sin(config: ModelConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``cos``/``sin`` of the rotation angles, shape ``positions.shape + (d/2,)``."""
    angles = positions.float()[..., None] * rope_inv_freq(config, positions.device)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str) -> torch.Tensor:
    """Rotates the channel pairs of ``x [B, S, H, d]`` by ``cos/sin [B, S, d/2]`` (fp32 math).

    ``interleaved``: pairs ``(x[2i], x[2i+1])`` as complex numbers (public code);
    ``rotate_half``: pairs ``(x[i], x[i + d/2])`` (Hugging Face ``rotate_half``).
    """
    xf = x.float()
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    if layout == "interleaved":
        x1, x2 = xf[..., 0::2], xf[..., 1::2]
        out = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)
    elif layout == "rotate_half":
        x1, x2 = xf.chunk(2, dim=-1)
        out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    else:
        raise ValueError(f"unknown rope layout '{layout}' (interleaved or rotate_half)")
    return out.to(x.dtype)


# ------------------------------------------------------------------------------- attention


class MLA(nn.Module):
    """Multi-head latent attention with decoupled RoPE (DeepSeek-V2 §2.1).

    ``c_q = q_norm(wq_a h)`` (or ``h`` without q low-rank), ``[q_nope; q_pe] = wq_b c_q`` per
    head; ``[c_kv; k_pe] = wkv_a h``; ``[k_nope; v] = wkv_b kv_norm(c_kv)`` per head; RoPE on
    ``q_pe`` and the head-shared ``k_pe``; scores scaled by ``config.softmax_scale``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.n_heads = c.n_heads
        self.q_lora_rank = c.q_lora_rank
        self.kv_lora_rank = c.kv_lora_rank
        self.qk_nope_head_dim = c.qk_nope_head_dim
        self.qk_rope_head_dim = c.qk_rope_head_dim
        self.qk_head_dim = c.qk_head_dim
        self.v_head_dim = c.v_head_dim
        self.softmax_scale = c.softmax_scale
        if c.q_lora_rank == 0:
            self.wq = Linear(c.dim, c.n_heads * c.qk_head_dim)
        else:
            self.wq_a = Linear(c.dim, c.q_lora_rank)
            self.q_norm = RMSNorm(c.q_lora_rank, c.norm_eps)
            self.wq_b = Linear(c.q_lora_rank, c.n_heads * c.qk_head_dim)
        self.wkv_a = Linear(c.dim, c.kv_lora_rank + c.qk_rope_head_dim)
        self.kv_norm = RMSNorm(c.kv_lora_rank, c.norm_eps)
        self.wkv_b = Linear(c.kv_lora_rank, c.n_heads * (c.qk_nope_head_dim + c.v_head_dim))
        self.wo = Linear(c.n_heads * c.v_head_dim, c.dim)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """``x [B, S, dim]``, rotary ``cos/sin [B, S, rope/2]``, ``mask [B, S, S]`` (True: keep)."""
        bsz, seqlen, _ = x.shape
        layout = self.config.rope_layout
        q = self.wq(x) if self.q_lora_rank == 0 else self.wq_b(self.q_norm(self.wq_a(x)))
        q = q.view(bsz, seqlen, self.n_heads, self.qk_head_dim)
        q_nope, q_pe = q.split([self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        q_pe = apply_rope(q_pe, cos, sin, layout)
        kv, k_pe = self.wkv_a(x).split([self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_pe = apply_rope(k_pe[:, :, None, :], cos, sin, layout)
        kv = self.wkv_b(self.kv_norm(kv)).view(
            bsz, seqlen, self.n_heads, self.qk_nope_head_dim + self.v_head_dim
        )
        k_nope, v = kv.split([self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        q = torch.cat([q_nope, q_pe], dim=-1)
        k = torch.cat([k_nope, k_pe.expand(-1, -1, self.n_heads, -1)], dim=-1)
        scores = torch.einsum("bshd,bthd->bsht", q, k) * self.softmax_scale
        scores = scores.float().masked_fill(~mask[:, :, None, :], float("-inf"))
        probs = scores.softmax(dim=-1).to(x.dtype)
        out = torch.einsum("bsht,bthd->bshd", probs, v)
        return self.wo(out.flatten(2))


# ------------------------------------------------------------------------------ feed-forward


class MLP(nn.Module):
    """SwiGLU feed-forward: ``w2(silu(w1 x) * w3 x)`` (dense layers, experts, shared experts)."""

    def __init__(self, dim: int, inter_dim: int) -> None:
        super().__init__()
        self.w1 = Linear(dim, inter_dim)
        self.w2 = Linear(inter_dim, dim)
        self.w3 = Linear(dim, inter_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the MLP to the last dimension of `x`."""
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


Expert = MLP


class Gate(nn.Module):
    """DeepSeekMoE router: scores, (group-limited) top-k selection, routing weights.

    ``s = sigmoid(W x)`` (V3) or ``softmax(W x)`` (V2); selection on ``s + bias`` (V3's
    aux-loss-free ``e_score_correction_bias``); with groups, only the ``n_limited_groups``
    groups with the best group score (sum of their top-2, or their max) are eligible; the
    weights are the selected *unbiased* ``s``, normalized to sum 1 when ``norm_topk_prob``,
    times ``route_scale``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.dim = c.dim
        self.topk = c.n_activated_experts
        self.n_groups = c.n_expert_groups
        self.topk_groups = c.n_limited_groups
        self.score_func = c.score_func
        self.route_scale = c.route_scale
        self.weight = nn.Parameter(torch.empty(c.n_routed_experts, c.dim))
        self.bias = (
            nn.Parameter(torch.empty(c.n_routed_experts, dtype=torch.float32))
            if c.use_correction_bias
            else None
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [N, dim]`` -> (weights ``[N, topk]`` fp32, expert indices ``[N, topk]``)."""
        logits = F.linear(x.float(), self.weight.float())
        scores = logits.softmax(dim=-1) if self.score_func == "softmax" else logits.sigmoid()
        original_scores = scores
        if self.bias is not None:
            scores = scores + self.bias.float()
        if self.n_groups > 1 and self.topk_groups < self.n_groups:
            grouped = scores.view(x.size(0), self.n_groups, -1)
            if self.config.group_score == "max":
                group_scores = grouped.amax(dim=-1)
            else:
                group_scores = grouped.topk(2, dim=-1)[0].sum(dim=-1)
            keep = group_scores.topk(self.topk_groups, dim=-1)[1]
            drop = torch.ones_like(group_scores, dtype=torch.bool).scatter_(1, keep, False)
            scores = grouped.masked_fill(drop[..., None], float("-inf")).flatten(1)
        indices = scores.topk(self.topk, dim=-1)[1]
        weights = original_scores.gather(1, indices)
        if self.config.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights * self.route_scale, indices


class MoE(nn.Module):
    """DeepSeekMoE: routed experts (weighted by the gate) + always-on shared experts."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.dim = c.dim
        self.n_routed_experts = c.n_routed_experts
        self.n_activated_experts = c.n_activated_experts
        self.gate = Gate(c)
        self.experts = nn.ModuleList(
            [Expert(c.dim, c.moe_inter_dim) for _ in range(c.n_routed_experts)]
        )
        self.shared_experts = (
            MLP(c.dim, c.n_shared_experts * c.moe_inter_dim) if c.n_shared_experts else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Routes each token of ``x [..., dim]`` to its experts and sums the weighted outputs."""
        shape = x.shape
        x = x.reshape(-1, self.dim)
        weights, indices = self.gate(x)
        weights = weights.to(x.dtype)
        y = torch.zeros_like(x)
        counts = torch.bincount(indices.flatten(), minlength=self.n_routed_experts).tolist()
        for i, expert in enumerate(self.experts):
            if counts[i] == 0:
                continue
            idx, top = torch.where(indices == i)
            y.index_add_(0, idx, expert(x[idx]) * weights[idx, top, None])
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y.view(shape)


# ------------------------------------------------------------------------------------ model


class Block(nn.Module):
    """Pre-norm transformer layer: ``x + attn(attn_norm(x))``, then ``+ ffn(ffn_norm(x))``."""

    def __init__(self, layer_id: int, config: ModelConfig) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.attn_norm = RMSNorm(config.dim, config.norm_eps)
        self.attn = MLA(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.ffn: nn.Module = (
            MLP(config.dim, config.inter_dim) if layer_id < config.n_dense_layers else MoE(config)
        )

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """One layer over ``x [B, S, dim]``."""
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.ffn(self.ffn_norm(x))


class MTPLayer(Block):
    """Depth-1 multi-token prediction layer (DeepSeek-V3 §2.2): a Block plus its input merge.

    ``h' = eh_proj([enorm(embed(t_{i+1})); hnorm(h_i)])``, then the Block, then ``norm``
    (the checkpoint's ``shared_head.norm``); the model's ``embed`` and ``head`` are shared.
    """

    def __init__(self, layer_id: int, config: ModelConfig) -> None:
        super().__init__(layer_id, config)
        self.enorm = RMSNorm(config.dim, config.norm_eps)
        self.hnorm = RMSNorm(config.dim, config.norm_eps)
        self.eh_proj = Linear(2 * config.dim, config.dim)
        self.norm = RMSNorm(config.dim, config.norm_eps)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pauses Python's cyclic GC: building ~60k modules otherwise spends most time in GC."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class DeepSeekModel(nn.Module):
    """DeepSeek-V2/V3 causal LM: ``forward(tokens, positions=None) -> logits [B, S, vocab]``.

    Constructs on the meta device without allocating (``with torch.device("meta"): ...``);
    on a real device the weights get ``init_weights()``'s random values.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        with _gc_paused():
            self.embed = nn.Embedding(config.vocab_size, config.dim)
            self.layers = nn.ModuleList(Block(i, config) for i in range(config.n_layers))
            self.norm = RMSNorm(config.dim, config.norm_eps)
            self.head = Linear(config.dim, config.vocab_size)
            if config.tie_word_embeddings:
                self.head.weight = self.embed.weight
            self.mtp = nn.ModuleList(
                MTPLayer(config.n_layers + k, config) for k in range(config.n_mtp_layers)
            )
        if not self.embed.weight.is_meta:
            self.init_weights()

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """Random weights with unit-scale activations: N(0, 1/fan_in) linears, N(0, 1) embed.

        Norm weights are 1; the gate bias is small noise so that it matters for selection.
        `seed` makes it reproducible without touching the global RNG.
        """
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.embed.weight.device).manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, module.in_features**-0.5, generator=gen)
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 1.0, generator=gen)
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)
            elif isinstance(module, Gate):
                module.weight.normal_(0.0, module.dim**-0.5, generator=gen)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.05, generator=gen)

    def _prepare(
        self, tokens: torch.Tensor, positions: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"tokens must be an integer tensor [batch, seq], got {tuple(tokens.shape)} "
                f"{tokens.dtype}"
            )
        bsz, seqlen = tokens.shape
        if positions is None:
            positions = torch.arange(seqlen, device=tokens.device).expand(bsz, seqlen)
        elif positions.shape != tokens.shape:
            raise ValueError(
                f"positions {tuple(positions.shape)} must have the shape of tokens "
                f"{tuple(tokens.shape)}"
            )
        cos, sin = rope_cos_sin(self.config, positions)
        mask = positions[:, None, :] <= positions[:, :, None]
        return positions, cos, sin, mask

    def hidden_states(
        self, tokens: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Final hidden states ``[B, S, dim]`` after the final norm (the input of ``head``)."""
        _, cos, sin, mask = self._prepare(tokens, positions)
        h = self.embed(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return self.norm(h)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, S, vocab]`` for ``tokens [B, S]`` at ``positions`` (default 0..S-1)."""
        return self.head(self.hidden_states(tokens, positions))

    def forward_mtp(
        self,
        tokens: torch.Tensor,
        hidden: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """MTP logits ``[B, S, vocab]`` predicting ``t_{i+2}``.

        `tokens` ``[B, S]`` are the *next* tokens ``t_{i+1}``; `hidden` ``[B, S, dim]`` is the
        main model's ``hidden_states`` at ``i`` (after the final norm, as vLLM/SGLang feed
        it); `positions` are those of ``i``. Computes ``norm(Block(eh_proj([enorm(embed(
        t_{i+1})); hnorm(h_i)])))`` and the shared ``head``.
        """
        if not len(self.mtp):
            raise ValueError("this model has no MTP layer (config.n_mtp_layers == 0)")
        if hidden.shape != (*tokens.shape, self.config.dim):
            raise ValueError(
                f"hidden {tuple(hidden.shape)} must be [batch, seq, dim] matching tokens "
                f"{tuple(tokens.shape)}"
            )
        layer = self.mtp[0]
        _, cos, sin, mask = self._prepare(tokens, positions)
        x = torch.cat([layer.enorm(self.embed(tokens)), layer.hnorm(hidden)], dim=-1)
        x = layer(layer.eh_proj(x), cos, sin, mask)
        return self.head(layer.norm(x))
