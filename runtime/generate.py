"""Autoregressive generation over a compiled causal LM's `prefill` and `decode` entry points.

The runtime owns the latent KV cache: one ``[batch, max_seq_len, kv_lora_rank + rope_dim]``
buffer per layer (the manifest's ``kv_cache``), passed in and taken back at every step.
Prefill has the static sequence length it was compiled with: a shorter prompt is padded on
the right (the padded slots are overwritten by the decode steps that reach them, and masked
until then); a longer one is prefilled in part and fed to `decode` token by token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .errors import ArtifactError, InputError

if TYPE_CHECKING:
    from .executable import Executable


@dataclass
class Sampling:
    """Greedy when `temperature` is 0; otherwise softmax sampling, optionally top-k."""

    temperature: float = 0.0
    top_k: int | None = None
    seed: int | None = None


def generate(
    exe: Executable, ids: torch.Tensor, max_new_tokens: int, sampling: Sampling | None = None
) -> torch.Tensor:
    """Returns ``ids`` followed by `max_new_tokens` generated tokens (``[B, S + n]``)."""
    sampling = sampling or Sampling()
    cache = exe.manifest.get("kv_cache")
    if not cache or not {"prefill", "decode"} <= set(exe.entry_points):
        raise ArtifactError(
            "this artifact has no prefill/decode entry points; compile a causal "
            "LM (an nn.Module the frontend recognizes) to generate"
        )
    batch, length = cache["batch"], cache["max_seq_len"]
    if ids.dim() != 2 or ids.shape[0] != batch:
        raise InputError(
            f"ids must be [{batch}, S] (the batch size compiled in), got {list(ids.shape)}"
        )
    total = ids.shape[1] + max_new_tokens
    if total > length:
        raise InputError(
            f"{ids.shape[1]} prompt + {max_new_tokens} new tokens exceed the "
            f"compiled KV cache length {length}"
        )
    dtype = getattr(torch, cache["dtype"])
    caches = [
        torch.zeros(batch, length, cache["entry"], dtype=dtype) for _ in range(cache["layers"])
    ]
    token_dtype = getattr(torch, exe.entry_points["prefill"]["inputs"][0]["dtype"])
    ids = ids.to(token_dtype)
    prefill_len = exe.entry_points["prefill"]["inputs"][0]["shape"][1]
    gen = torch.Generator().manual_seed(sampling.seed) if sampling.seed is not None else None

    def step(entry: str, tokens: torch.Tensor, start: int) -> torch.Tensor:
        nonlocal caches
        positions = (torch.arange(tokens.shape[1]) + start).expand(batch, -1).to(token_dtype)
        logits, *caches = exe.run(entry, tokens, positions.contiguous(), *caches)
        return logits

    head = ids[:, :prefill_len]
    pad = prefill_len - head.shape[1]
    padded = torch.cat([head, head.new_zeros(batch, pad)], dim=1) if pad > 0 else head
    logits = step("prefill", padded, 0)[:, head.shape[1] - 1]
    for pos in range(head.shape[1], ids.shape[1]):  # prompt tokens beyond prefill's length
        logits = step("decode", ids[:, pos : pos + 1], pos)[:, -1]
    out = [ids]
    for i in range(max_new_tokens):
        nxt = _pick(logits, sampling, gen).to(token_dtype)
        out.append(nxt[:, None])
        if i + 1 < max_new_tokens:
            logits = step("decode", nxt[:, None], ids.shape[1] + i)[:, -1]
    return torch.cat(out, dim=1)


def _pick(logits: torch.Tensor, sampling: Sampling, gen: Any) -> torch.Tensor:
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / sampling.temperature
    if sampling.top_k:
        kth = scores.topk(min(sampling.top_k, scores.shape[-1]), dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=gen)[:, 0]
