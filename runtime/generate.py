"""Autoregressive generation over a compiled causal LM's `prefill` and `decode` entry points.

The contract is docs/execution-contract.md: the runtime owns the latent cache (`KVCache`,
updated in place by every call); a batch of up to the compiled maximum is served by filling
the unused rows with dummies; prompts of any length up to the cache are prefilled in chunks
of the compiled prefill length (never token by token); every sequence keeps its own positions
``0..n-1``, so a left- or right-padded batch generates what each prompt generates alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .errors import ArtifactError, InputError
from .kv_cache import KVCache

if TYPE_CHECKING:
    from .executable import Executable


@dataclass
class Sampling:
    """Greedy when `temperature` is 0; otherwise softmax sampling, optionally top-k / top-p
    (nucleus) filtered, reproducible with `seed`."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def check(self) -> None:
        """One clear error for a setting that makes no sense."""
        if not (self.temperature >= 0 and self.temperature < float("inf")):
            raise InputError(f"temperature must be >= 0 and finite, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise InputError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InputError(f"top_p must lie in (0, 1], got {self.top_p}")


@dataclass
class GenerationStats:
    """What the last `generate` call did: tokens, target calls, time, speculation."""

    sequences: int = 0
    prompt_tokens: int = 0
    new_tokens: int = 0
    prefill_calls: int = 0
    decode_calls: int = 0
    draft_calls: int = 0
    verify_calls: int = 0
    drafted: int = 0
    accepted: int = 0
    seconds: float = 0.0

    @property
    def target_calls(self) -> int:
        """Calls of the main model after prefill (decode or verify steps)."""
        return self.decode_calls + self.verify_calls

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted / drafted tokens (None without speculation)."""
        return self.accepted / self.drafted if self.drafted else None

    @property
    def tokens_per_target_call(self) -> float:
        """New tokens per main-model step after prefill (1.0 without speculation)."""
        steps = self.target_calls
        per_seq = self.new_tokens / max(self.sequences, 1)
        return (per_seq - 1) / steps if steps else 1.0


def prompts_of(ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[torch.Tensor]:
    """The real tokens of each row of ``ids [B, S]`` under a left- or right-padded mask."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise InputError(f"ids must be a [batch, seq] tensor, got {_describe(ids)}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise InputError(f"ids must be integer token ids, got {ids.dtype}")
    if attention_mask is None:
        return list(ids)
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != ids.shape:
        raise InputError(
            f"attention_mask must be a tensor shaped like ids {list(ids.shape)}, "
            f"got {_describe(attention_mask)}"
        )
    if attention_mask.dtype.is_floating_point or attention_mask.dtype.is_complex:
        raise InputError(f"attention_mask must be bool or integer, got {attention_mask.dtype}")
    mask = attention_mask.to(torch.int64)
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise InputError("attention_mask must hold only 0 and 1")
    prompts = []
    for row, (tokens, keep) in enumerate(zip(ids, mask)):
        real = keep.nonzero().flatten()
        if real.numel() == 0:
            raise InputError(f"row {row} of attention_mask has no real token")
        first, last = int(real[0]), int(real[-1])
        if last - first + 1 != real.numel():
            raise InputError(
                f"row {row} of attention_mask has padding between real tokens; only left or "
                "right padding is supported"
            )
        prompts.append(tokens[first : last + 1])
    return prompts


def generate(
    exe: Executable,
    ids: torch.Tensor,
    max_new_tokens: int | Sequence[int],
    *,
    attention_mask: torch.Tensor | None = None,
    sampling: Sampling | None = None,
    stop_tokens: Sequence[int] = (),
    pad_token_id: int = 0,
    cache: KVCache | None = None,
) -> torch.Tensor:
    """Returns ``ids`` followed by the generated tokens, ``[B, S + max(max_new_tokens)]``;
    a row that stops early (a stop token, its own `max_new_tokens`) is filled with
    `pad_token_id`. Statistics of the call go to ``exe.last_generation``."""
    sampling = sampling or Sampling()
    sampling.check()
    spec = _cache_spec(exe)
    prompts = prompts_of(ids, attention_mask)
    budgets = _budgets(max_new_tokens, len(prompts))
    if len(prompts) > spec["batch"]:
        raise InputError(
            f"{len(prompts)} sequences exceed the compiled maximum batch {spec['batch']} "
            "(compile with a larger example batch)"
        )
    for row, (prompt, budget) in enumerate(zip(prompts, budgets)):
        if len(prompt) + budget > spec["max_seq_len"]:
            raise InputError(
                f"sequence {row}: {len(prompt)} prompt + {budget} new tokens exceed the "
                f"compiled KV cache length {spec['max_seq_len']}"
            )
    cache = cache or KVCache(spec)
    cache.reset()
    stats = GenerationStats(sequences=len(prompts), prompt_tokens=sum(map(len, prompts)))
    start = time.perf_counter()
    runner = Runner(exe, cache, stats)
    gen = torch.Generator().manual_seed(sampling.seed) if sampling.seed is not None else None
    stops = set(stop_tokens)

    logits = runner.prefill(prompts)
    new: list[list[int]] = [[] for _ in prompts]
    active = [budget > 0 for budget in budgets]
    while True:
        picked = pick(logits, sampling, gen)
        for row, token in enumerate(picked.tolist()):
            if not active[row]:
                continue
            new[row].append(token)
            if token in stops or len(new[row]) >= budgets[row]:
                active[row] = False
                cache.release(row)
        if not any(active):
            break
        logits = runner.decode([new[row][-1] if active[row] else None for row in range(len(new))])
    stats.new_tokens = sum(map(len, new))
    stats.seconds = time.perf_counter() - start
    exe.last_generation = stats
    width = max(map(len, new))
    out = torch.full((len(new), width), pad_token_id, dtype=ids.dtype)
    for row, tokens in enumerate(new):
        out[row, : len(tokens)] = torch.tensor(tokens, dtype=ids.dtype)
    return torch.cat([ids, out], dim=1)


class Runner:
    """Calls prefill/decode on a `KVCache`: pads the batch with dummy rows and the last
    prefill chunk with dummy tokens, and keeps every row's length."""

    def __init__(self, exe: Executable, cache: KVCache, stats: GenerationStats | None = None):
        self.exe = exe
        self.cache = cache
        self.stats = stats or GenerationStats()
        prefill = exe.entry_points["prefill"]["inputs"]
        self.chunk: int = prefill[0]["shape"][1]
        self.token_dtype = getattr(torch, prefill[0]["dtype"])
        self.position_dtype = getattr(torch, prefill[1]["dtype"])

    def prefill(self, prompts: list[torch.Tensor]) -> torch.Tensor:
        """Writes every prompt into its row of the cache; returns the logits after each
        prompt's last token, ``[len(prompts), vocab]``."""
        cache, chunk = self.cache, self.chunk
        last: list[torch.Tensor | None] = [None] * len(prompts)
        rounds = -(-max(len(p) for p in prompts) // chunk)
        for k in range(rounds):
            begin = k * chunk
            tokens = torch.zeros(cache.rows, chunk, dtype=self.token_dtype)
            positions = self._dummy_positions(chunk)
            for row, prompt in enumerate(prompts):
                real = prompt[begin : begin + chunk]
                tokens[row, : len(real)] = real
                positions[row] = self._clamp(torch.arange(begin, begin + chunk))
                if len(real):
                    cache.reserve(row, begin + len(real))
                    cache.lengths[row] = begin + len(real)
            logits = self._call("prefill", tokens, positions)
            self.stats.prefill_calls += 1
            for row, prompt in enumerate(prompts):
                if begin <= len(prompt) - 1 < begin + chunk:
                    last[row] = logits[row, len(prompt) - 1 - begin]
        return torch.stack(last)  # type: ignore[arg-type]

    def decode(self, tokens: list[int | None]) -> torch.Tensor:
        """One token for every row that has one (None: the row is done); returns the next
        logits ``[len(tokens), vocab]``."""
        cache = self.cache
        step = torch.zeros(cache.rows, 1, dtype=self.token_dtype)
        positions = self._dummy_positions(1)
        for row, token in enumerate(tokens):
            if token is None:
                continue
            length = cache.lengths[row]
            cache.reserve(row, length + 1)
            step[row, 0] = token
            positions[row, 0] = length
            cache.lengths[row] = length + 1
        logits = self._call("decode", step, positions)
        self.stats.decode_calls += 1
        return logits[: len(tokens), -1]

    def _dummy_positions(self, length: int) -> torch.Tensor:
        ramp = self._clamp(torch.arange(length))
        return ramp.expand(self.cache.rows, length).clone()

    def _clamp(self, positions: torch.Tensor) -> torch.Tensor:
        return positions.clamp(max=self.cache.max_seq_len - 1).to(self.position_dtype)

    def _call(self, entry: str, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        logits, *caches = self.exe.run(entry, tokens, positions, *self.cache.inputs())
        # Executors update the donated buffers in place and return them; one that does not
        # (value semantics) hands back new buffers, which become the cache.
        self.cache.layers = list(caches)
        return logits


def pick(logits: torch.Tensor, sampling: Sampling, gen: Any) -> torch.Tensor:
    """Next token per row of ``logits [B, V]`` under `sampling`."""
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / sampling.temperature
    if sampling.top_k:
        kth = scores.topk(min(sampling.top_k, scores.shape[-1]), dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        ordered, order = scores.sort(dim=-1, descending=True)
        mass = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = mass - ordered.softmax(dim=-1) >= sampling.top_p  # keeps the token crossing p
        scores = scores.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=gen)[:, 0]


def _cache_spec(exe: Executable) -> dict[str, Any]:
    spec = exe.manifest.get("kv_cache")
    if not spec or not {"prefill", "decode"} <= set(exe.entry_points):
        raise ArtifactError(
            "this artifact has no prefill/decode entry points; compile a causal "
            "LM (an nn.Module the frontend recognizes) to generate"
        )
    return spec


def _budgets(max_new_tokens: int | Sequence[int], rows: int) -> list[int]:
    budgets = [max_new_tokens] * rows if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(budgets) != rows or any(not isinstance(b, int) or b < 0 for b in budgets):
        raise InputError(
            f"max_new_tokens must be a non-negative int or one per sequence ({rows}), "
            f"got {max_new_tokens!r}"
        )
    return budgets


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__
