"""Autoregressive generation over a compiled causal LM's `prefill` and `decode` entry points.

The contract is docs/execution-contract.md: the runtime owns the latent cache (`KVCache`,
updated in place by every call); a batch of up to the compiled maximum is served by filling
the unused rows with dummies; prompts of any length up to the cache are prefilled in chunks
of the compiled prefill length (never token by token); every sequence keeps its own positions
``0..n-1``, so a left- or right-padded batch generates what each prompt generates alone.

Speculative decoding (``speculative="mtp"``, greedy): a model with DeepSeek-V3's MTP layer has
`verify` (the main model over the last token and a draft) and `draft` (the MTP layer, with its
own latent cache) entry points. Each step verifies ``[t_last, draft]``, keeps the draft when the
main model's argmax after ``t_last`` equals it (then the argmax after the draft too: a bonus
token), else the main model's token; then drafts the next token from the newly confirmed
(token, hidden state) pairs. The tokens are those of plain greedy decoding; a rejected draft's
cache entry sits past the sequence's end and is overwritten before any query can see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
    """What the last `generate` call did: tokens, target calls, time, speculation.

    `draft_calls` counts the MTP layer's calls (its prompt chunks included); `drafted` and
    `accepted` count draft tokens over all sequences. On a target that accounts costs
    (`sim`), `simulated_seconds` is the simulated time of every call after the main prefill
    (decode steps, or MTP prefill + verify + draft calls) and `simulated_plain_seconds` what
    plain decoding of the same tokens takes (the decode steps it would run, timed)."""

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
    # Main-model steps after prefill, counted per sequence that took part, and the tokens they
    # produced (every sequence's first token comes from prefill).
    sequence_steps: int = 0
    step_tokens: int = 0
    simulated_seconds: float | None = None
    simulated_plain_seconds: float | None = None
    plain_steps: int = 0  # decode steps plain decoding of these tokens runs

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
        """New tokens per main-model step per sequence after prefill (1.0 without
        speculation; 1 + the acceptance rate with depth-1 MTP, less a bonus token cut by a
        stop token or a budget)."""
        if self.sequence_steps:
            return self.step_tokens / self.sequence_steps
        steps = self.target_calls
        per_seq = self.new_tokens / max(self.sequences, 1)
        return (per_seq - 1) / steps if steps else 1.0

    @property
    def simulated_speedup(self) -> float | None:
        """Simulated time of plain decoding / this run's (after prefill); None off `sim`."""
        if not self.simulated_seconds or self.simulated_plain_seconds is None:
            return None
        return self.simulated_plain_seconds / self.simulated_seconds

    @property
    def simulated_seconds_per_token(self) -> float | None:
        """Simulated time per generated token (per decode step of plain decoding)."""
        if self.simulated_seconds is None or not self.plain_steps:
            return None
        return self.simulated_seconds / self.plain_steps


def prompts_of(ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[torch.Tensor]:
    """The real tokens of each row of ``ids [B, S]`` under a left- or right-padded mask."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise InputError(f"ids must be a [batch, seq] tensor, got {_describe(ids)}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise InputError(f"ids must be integer token ids, got {ids.dtype}")
    if ids.numel() == 0:
        raise InputError(f"ids must hold at least one token per sequence, got {list(ids.shape)}")
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


SPECULATIVE = ("mtp",)

# on_token(row, token): called for every generated token as soon as it is confirmed
OnToken = Callable[[int, int], None]


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
    speculative: str | None = None,
    on_token: OnToken | None = None,
) -> torch.Tensor:
    """Returns ``ids`` followed by the generated tokens, ``[B, S + max(max_new_tokens)]``;
    a row that stops early (a stop token, its own `max_new_tokens`) is filled with
    `pad_token_id`. ``speculative="mtp"`` drafts with the model's MTP layer and verifies
    (greedy only; the same tokens as plain greedy decoding). `on_token(row, token)` is called
    for each token as it is confirmed (streaming). Statistics of the call go to
    ``exe.last_generation``."""
    sampling = sampling or Sampling()
    sampling.check()
    spec = _cache_spec(exe)
    if speculative is not None:
        _check_speculative(exe, speculative, sampling)
    prompts = prompts_of(ids, attention_mask)
    budgets = _budgets(max_new_tokens, len(prompts))
    stops = _stop_tokens(stop_tokens)
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
    sim = _SimClock(exe)
    rows = _Rows(cache, budgets, stops, on_token)
    if speculative:
        new = _speculate(runner, prompts, rows, sim)
    else:
        new = _decode(runner, prompts, rows, sampling, sim)
    stats.new_tokens = sum(map(len, new))
    stats.step_tokens = sum(max(len(tokens) - 1, 0) for tokens in new)
    stats.seconds = time.perf_counter() - start
    sim.finish(stats, prompts, new, speculative)
    exe.last_generation = stats
    width = max(map(len, new))
    out = torch.full((len(new), width), pad_token_id, dtype=ids.dtype)
    for row, tokens in enumerate(new):
        out[row, : len(tokens)] = torch.tensor(tokens, dtype=ids.dtype)
    return torch.cat([ids, out], dim=1)


class _Rows:
    """Every sequence's generated tokens and whether it still generates."""

    def __init__(
        self, cache: KVCache, budgets: list[int], stops: set[int], on_token: OnToken | None
    ):
        self.cache, self.budgets, self.stops, self.on_token = cache, budgets, stops, on_token
        self.new: list[list[int]] = [[] for _ in budgets]
        self.active = [budget > 0 for budget in budgets]

    def release_idle(self) -> None:
        """Gives back the cache of rows that generate nothing (a budget of 0)."""
        for row, on in enumerate(self.active):
            if not on:
                self.cache.release(row)

    def take(self, row: int, tokens: list[int]) -> None:
        """Appends `tokens` to an active row up to a stop token or its budget (the rest is
        dropped); a row that ends gives its cache back."""
        for token in tokens:
            self.new[row].append(token)
            if self.on_token is not None:
                self.on_token(row, token)
            if token in self.stops or len(self.new[row]) >= self.budgets[row]:
                self.active[row] = False
                self.cache.release(row)
                return

    def live(self) -> list[int]:
        return [row for row, on in enumerate(self.active) if on]


def _decode(
    runner: Runner, prompts: list[torch.Tensor], rows: _Rows, sampling: Sampling, sim: _SimClock
) -> list[list[int]]:
    """Plain decoding: prefill, then one decode step per token."""
    gen = torch.Generator().manual_seed(sampling.seed) if sampling.seed is not None else None
    logits = runner.prefill(prompts)
    rows.release_idle()
    sim.mark()
    while True:
        picked = pick(logits, sampling, gen).tolist()
        for row in rows.live():
            rows.take(row, [picked[row]])
        live = rows.live()
        if not live:
            return rows.new
        runner.stats.sequence_steps += len(live)
        logits = runner.decode(
            [rows.new[r][-1] if rows.active[r] else None for r in range(len(prompts))]
        )


def _speculate(
    runner: Runner, prompts: list[torch.Tensor], rows: _Rows, sim: _SimClock
) -> list[list[int]]:
    """Greedy MTP speculative decoding (see the module docstring)."""
    stats, cache = runner.stats, runner.cache
    first = runner.prefill(prompts, keep_hidden=True).argmax(dim=-1).tolist()
    rows.release_idle()
    sim.mark()
    for row in rows.live():
        rows.take(row, [first[row]])
    if not rows.live():
        return rows.new
    # The MTP layer over the prompts: at position j the pair (t_{j+1}, h_j); the last pair
    # (the first generated token, h_{n-1}) drafts the token after it.
    pairs: list[tuple[int, torch.Tensor, torch.Tensor] | None] = [None] * len(prompts)
    for row in rows.live():
        shifted = torch.cat([prompts[row][1:], torch.tensor([first[row]])])
        pairs[row] = (0, shifted, runner.prompt_hidden[row])
    drafts = runner.draft_prefill(pairs).argmax(dim=-1).tolist()
    while True:
        live = rows.live()
        logits, hidden = runner.verify(
            [(rows.new[r][-1], drafts[r]) if rows.active[r] else None for r in range(len(prompts))]
        )
        best = logits.argmax(dim=-1).tolist()
        stats.sequence_steps += len(live)
        pairs = [None] * len(prompts)
        for row in live:
            stats.drafted += 1
            if best[row][0] == drafts[row]:  # the draft is the main model's token: keep the
                stats.accepted += 1  # main model's next one too
                confirmed = [drafts[row], best[row][1]]
            else:
                confirmed = [best[row][0]]
            start = cache.lengths[row]  # the last token and the draft went to start, start+1
            cache.lengths[row] = start + len(confirmed)
            k = len(confirmed)
            pairs[row] = (start, torch.tensor(confirmed), hidden[row, :k])
            rows.take(row, confirmed)
        if not rows.live():
            return rows.new
        drafts = runner.draft([p if rows.active[r] else None for r, p in enumerate(pairs)])
        drafts = drafts.argmax(dim=-1).tolist()


def _check_speculative(exe: Executable, speculative: str, sampling: Sampling) -> None:
    if speculative not in SPECULATIVE:
        raise InputError(
            f"speculative must be None or one of {', '.join(map(repr, SPECULATIVE))}, "
            f"got {speculative!r}"
        )
    if sampling.temperature > 0:
        raise InputError(
            f"speculative={speculative!r} decodes greedily (temperature 0), got temperature "
            f"{sampling.temperature}"
        )
    missing = [e for e in ("verify", "draft", "draft_prefill") if e not in exe.entry_points]
    if missing or not (exe.manifest["kv_cache"].get("mtp") or {}).get("layers"):
        raise InputError(
            f"speculative={speculative!r} needs a model with a multi-token-prediction layer "
            f"(verify/draft entry points); this artifact has none (entry points: "
            f"{', '.join(exe.entry_points)})"
        )


class Runner:
    """Calls prefill/decode (and verify/draft) on a `KVCache`: pads the batch with dummy rows
    and the last chunk with dummy tokens, and keeps every row's length."""

    def __init__(self, exe: Executable, cache: KVCache, stats: GenerationStats | None = None):
        self.exe = exe
        self.cache = cache
        self.stats = stats or GenerationStats()
        prefill = exe.entry_points["prefill"]["inputs"]
        self.chunk: int = prefill[0]["shape"][1]
        self.token_dtype = getattr(torch, prefill[0]["dtype"])
        self.position_dtype = getattr(torch, prefill[1]["dtype"])
        self.with_hidden = bool((cache.spec.get("mtp") or {}).get("hidden"))
        self.hidden: torch.Tensor | None = None  # the last main call's final hidden states
        self.prompt_hidden: list[torch.Tensor] = []  # per prompt ``[n, dim]`` (keep_hidden)

    def prefill(self, prompts: list[torch.Tensor], keep_hidden: bool = False) -> torch.Tensor:
        """Writes every prompt into its row of the cache; returns the logits after each
        prompt's last token, ``[len(prompts), vocab]``. `keep_hidden` keeps every prompt's
        final hidden states in `prompt_hidden` (models with an MTP layer)."""
        cache, chunk = self.cache, self.chunk
        for row, prompt in enumerate(prompts):
            # Padding tokens sit at positions past the prompt, clamped to the last slot: a
            # prompt must leave that slot free, or they would overwrite its last token.
            if not 0 < len(prompt) < cache.max_seq_len:
                raise InputError(
                    f"prompt {row} has {len(prompt)} tokens; the compiled cache takes prompts "
                    f"of 1 to {cache.max_seq_len - 1} tokens"
                )
        last: list[torch.Tensor | None] = [None] * len(prompts)
        kept: list[list[torch.Tensor]] = [[] for _ in prompts]
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
                if keep_hidden and begin < len(prompt):
                    states = self.hidden[row, : len(prompt) - begin]  # type: ignore[index]
                    kept[row].append(states.clone())
        if keep_hidden:
            self.prompt_hidden = [torch.cat(parts) for parts in kept]
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

    def verify(self, pairs: list[tuple[int, int] | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """The main model over ``(last token, draft)`` of every row that has them, at the row's
        next two positions; returns logits ``[len(pairs), 2, vocab]`` and final hidden states
        ``[len(pairs), 2, dim]``. Row lengths stay: the caller sets them to what it accepts
        (the entries past them are overwritten by the next call before any query sees them)."""
        cache = self.cache
        step = torch.zeros(cache.rows, 2, dtype=self.token_dtype)
        positions = self._dummy_positions(2)
        for row, pair in enumerate(pairs):
            if pair is None:
                continue
            length = cache.lengths[row]
            cache.reserve(row, length + 2)
            step[row] = torch.tensor(pair, dtype=self.token_dtype)
            positions[row] = self._clamp(torch.arange(length, length + 2))
        logits = self._call("verify", step, positions)
        self.stats.verify_calls += 1
        return logits[: len(pairs)], self.hidden[: len(pairs)]  # type: ignore[index]

    def draft(self, pairs: list[tuple[int, torch.Tensor, torch.Tensor] | None]) -> torch.Tensor:
        """The MTP layer over 1 or 2 confirmed ``(start, tokens t_{i+1}, hidden h_i)`` per row
        (positions ``start..``; a missing second one is a dummy past the row's end); returns
        the MTP logits after each row's last pair, ``[len(pairs), vocab]`` (rows without
        pairs: dummies)."""
        return self._mtp("draft", 2, pairs)

    def draft_prefill(
        self, pairs: list[tuple[int, torch.Tensor, torch.Tensor] | None]
    ) -> torch.Tensor:
        """`draft` over whole prompts: chunks of the prefill length (never pair by pair).
        Rows without pairs get zero logits."""
        width = self.chunk
        longest = max(len(p[1]) for p in pairs if p is not None)
        last: list[torch.Tensor | None] = [None] * len(pairs)
        for begin in range(0, longest, width):
            chunk: list[tuple[int, torch.Tensor, torch.Tensor] | None] = [None] * len(pairs)
            for row, pair in enumerate(pairs):
                if pair is not None and begin < len(pair[1]):
                    start, tokens, hidden = pair
                    end = begin + width
                    chunk[row] = (start + begin, tokens[begin:end], hidden[begin:end])
            logits = self._mtp("draft_prefill", width, chunk)
            for row, part in enumerate(chunk):
                if part is not None and begin + width >= len(pairs[row][1]):  # type: ignore[index]
                    last[row] = logits[row]
        done = torch.zeros_like(next(t for t in last if t is not None))  # rows without pairs
        return torch.stack([done if t is None else t for t in last])

    def _mtp(
        self, entry: str, width: int, pairs: list[tuple[int, torch.Tensor, torch.Tensor] | None]
    ) -> torch.Tensor:
        spec = self.exe.entry_points[entry]["inputs"][1]
        cache = self.cache
        tokens = torch.zeros(cache.rows, width, dtype=self.token_dtype)
        hidden = torch.zeros(spec["shape"], dtype=getattr(torch, spec["dtype"]))
        positions = self._dummy_positions(width)
        count = [0] * len(pairs)
        for row, pair in enumerate(pairs):
            if pair is None:
                continue
            start, real, states = pair
            count[row] = len(real)
            tokens[row, : len(real)] = real
            hidden[row, : len(real)] = states
            positions[row] = self._clamp(torch.arange(start, start + width))
        logits = self._call(entry, tokens, positions, hidden)
        self.stats.draft_calls += 1
        return torch.stack([logits[row, max(n, 1) - 1] for row, n in enumerate(count)])

    def _dummy_positions(self, length: int) -> torch.Tensor:
        ramp = self._clamp(torch.arange(length))
        return ramp.expand(self.cache.rows, length).clone()

    def _clamp(self, positions: torch.Tensor) -> torch.Tensor:
        return positions.clamp(max=self.cache.max_seq_len - 1).to(self.position_dtype)

    def _call(
        self,
        entry: str,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        head = (tokens, positions) if hidden is None else (tokens, hidden, positions)
        logits, *rest = self.exe.run(entry, *head, *self.cache.inputs(entry))
        # Executors update the donated buffers in place and return them; one that does not
        # (value semantics) hands back new buffers, which become the cache.
        if entry.startswith("draft"):
            self.cache.mtp = list(rest)
            return logits
        if self.with_hidden:
            self.hidden, *rest = rest
        self.cache.layers = list(rest)
        return logits


class _SimClock:
    """Simulated time of a `generate` on a target that accounts costs (`sim`): the calls after
    the main prefill, and what plain decoding of the same tokens would take."""

    def __init__(self, exe: Executable):
        self.exe = exe
        self.report = exe.report()
        self.estimate = getattr(exe.executor, "estimate_cycles", None)
        self.on = self.report is not None and hasattr(self.report, "calls")
        self.start = 0

    def mark(self) -> None:
        """Called after the main prefill: what follows is decoding."""
        if self.on:
            self.start = len(self.report.calls)

    def finish(
        self,
        stats: GenerationStats,
        prompts: list[torch.Tensor],
        new: list[list[int]],
        speculative: str | None,
    ) -> None:
        # Plain decoding runs decode step k (k >= 1) for the sequences with more than k tokens,
        # each at position len(prompt) + k - 1; the attention reads up to the largest one.
        contexts = []
        for k in range(1, max(map(len, new), default=0)):
            live = [len(p) + k - 1 for p, tokens in zip(prompts, new) if len(tokens) > k]
            contexts.append(max(live) + 1)
        stats.plain_steps = len(contexts)
        if not self.on:
            return
        report = self.report
        cycles = sum(call.cycles for call in report.calls[self.start :])
        stats.simulated_seconds = report.seconds(cycles)
        if not speculative:
            stats.simulated_plain_seconds = stats.simulated_seconds
            return
        if self.estimate is None:
            return
        plain = sum(self.estimate("decode", context) for context in contexts)
        stats.simulated_plain_seconds = report.seconds(plain)
        if hasattr(report, "speculation"):
            report.speculation = {
                "method": speculative,
                "sequences": stats.sequences,
                "new_tokens": stats.new_tokens,
                "drafted": stats.drafted,
                "accepted": stats.accepted,
                "acceptance_rate": stats.acceptance_rate,
                "verify_calls": stats.verify_calls,
                "draft_calls": stats.draft_calls,
                "tokens_per_target_call": stats.tokens_per_target_call,
                "seconds": stats.simulated_seconds,
                "plain_seconds": stats.simulated_plain_seconds,
                "seconds_per_token": stats.simulated_seconds_per_token,
                "plain_seconds_per_token": (
                    stats.simulated_plain_seconds / stats.plain_steps if stats.plain_steps else None
                ),
                "speedup": stats.simulated_speedup,
            }


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
    if isinstance(max_new_tokens, int):
        budgets = [max_new_tokens] * rows
    elif isinstance(max_new_tokens, Sequence):
        budgets = list(max_new_tokens)
    else:
        budgets = []
    if len(budgets) != rows or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in budgets
    ):
        raise InputError(
            f"max_new_tokens must be a non-negative int or one per sequence ({rows}), "
            f"got {max_new_tokens!r}"
        )
    return budgets


def _stop_tokens(stop_tokens: Any) -> set[int]:
    listed = isinstance(stop_tokens, (list, tuple, set, frozenset))
    if listed and all(isinstance(t, int) and not isinstance(t, bool) for t in stop_tokens):
        return set(stop_tokens)
    raise InputError(f"stop_tokens must be a list of token ids, got {stop_tokens!r}")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__
