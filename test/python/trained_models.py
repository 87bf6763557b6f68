"""Tiny models briefly trained on a synthetic language, for tests whose bar assumes a trained model.

Why: the random-init tiny models are abnormally sensitive to their MoE routing. With random
router weights the top-k decision margins are small and the expert outputs are uncorrelated, so
the few-percent perturbation of e4m3 flips the routing of ~11-14% of the tokens and each flip
moves the logits a lot: FP8 logits cosine ~0.95-0.96 on `deepseek-v3-tiny` (seeds 0..4), and
~0.994 when the routing is pinned to the unquantized choice. After a few hundred AdamW steps on a
learnable language the same model gives ~0.997-0.999 (routing flips on ~5-6% of the tokens, and
a flip costs little because the experts have learned related functions): the sensitivity is a
property of random weights, not of FP8 on this architecture. Trained models are what the accuracy
bar of FP8 ("logits cosine > 0.99") is about.

The language: a random first-order Markov chain over the model's vocabulary. Each token has 4
successors (drawn uniformly, repeats allowed) with Dirichlet(1) transition probabilities, both from
a fixed generator seed; a sequence starts at a uniform random token. Its entropy is ~1.1 nats a
token (uniform: log V = 6.2 / 4.9 nats for vocabularies of 512 / 128), and the tiny models get
within a few hundredths of a nat of it in a few hundred steps.

Everything is deterministic: fixed step counts (not wall time), `torch.manual_seed`, and fixed
sample seeds. The cached constructors train each model once per test session; callers must not
mutate the returned model (compiling it does not).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

FANOUT = 4
LANGUAGE_SEED = 123
LR = 3e-3
BATCH = 16
LENGTH = 64


@functools.lru_cache(maxsize=None)
def markov_chain(vocab: int, seed: int = LANGUAGE_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``(successors, probs)``, both ``[vocab, FANOUT]``: token i is followed by
    ``successors[i, j]`` with probability ``probs[i, j]`` (Dirichlet(1) rows)."""
    g = torch.Generator().manual_seed(seed)
    successors = torch.randint(0, vocab, (vocab, FANOUT), generator=g)
    gamma = torch.empty(vocab, FANOUT).exponential_(1.0, generator=g)  # Gamma(1) = Exp(1)
    return successors, gamma / gamma.sum(-1, keepdim=True)


def markov_tokens(vocab: int, n: int, length: int, seed: int) -> torch.Tensor:
    """``n`` sequences of ``length`` tokens (int64 ``[n, length]``) of the Markov language over
    ``vocab`` tokens; `seed` picks the sample, the language is fixed."""
    successors, probs = markov_chain(vocab)
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, length, dtype=torch.long)
    out[:, 0] = torch.randint(0, vocab, (n,), generator=g)
    for i in range(1, length):
        prev = out[:, i - 1]
        pick = torch.multinomial(probs[prev], 1, generator=g).squeeze(1)
        out[:, i] = successors[prev, pick]
    return out


def _logits(out) -> torch.Tensor:
    if hasattr(out, "logits"):
        return out.logits
    return out[0] if isinstance(out, tuple) else out


def train_briefly(
    model: torch.nn.Module,
    vocab: int,
    steps: int,
    seed: int = 0,
    forward: Callable[[torch.nn.Module, torch.Tensor], object] | None = None,
) -> torch.nn.Module:
    """Next-token training on the Markov language: AdamW (lr 3e-3, no weight decay), batches of
    16 sequences of 64 tokens, exactly `steps` steps. `forward(model, ids)` returns the logits
    (or a tuple / an object with ``.logits``); default ``model(ids)``. Returns `model`, in
    eval mode."""
    forward = forward or (lambda m, ids: m(ids))
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    model.train()
    for step in range(steps):
        x = markov_tokens(vocab, BATCH, LENGTH + 1, seed=10_000 * (seed + 1) + step)
        logits = _logits(forward(model, x[:, :-1]))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in params:
        p.grad = None
    return model.eval()


def held_out(vocab: int, n: int = 4, length: int = 64, seed: int = 999) -> torch.Tensor:
    """Markov sequences no training step samples (training seeds are >= 10000)."""
    return markov_tokens(vocab, n, length, seed)


REFERENCE_V3_STEPS = 300
HF_V3_STEPS = 300
HF_V2_STEPS = 150


@functools.lru_cache(maxsize=None)
def trained_reference_v3() -> torch.nn.Module:
    """Our ``deepseek-v3-tiny`` (seed 0), trained `REFERENCE_V3_STEPS` steps."""
    from mlacc.model_input import builtin_model

    model = builtin_model("deepseek-v3-tiny")
    return train_briefly(model, model.config.vocab_size, REFERENCE_V3_STEPS)


def _train_hf(model: torch.nn.Module, steps: int) -> torch.nn.Module:
    return train_briefly(
        model,
        model.config.vocab_size,
        steps,
        forward=lambda m, ids: m(input_ids=ids, use_cache=False),
    )


@functools.lru_cache(maxsize=None)
def trained_hf_v3() -> torch.nn.Module:
    """`hf_models.hf_v3()` (seed 0), trained `HF_V3_STEPS` steps."""
    from hf_models import hf_v3

    return _train_hf(hf_v3(), HF_V3_STEPS)


@functools.lru_cache(maxsize=None)
def trained_hf_v2() -> torch.nn.Module:
    """`hf_models.hf_v2()` (seed 0), trained `HF_V2_STEPS` steps."""
    from hf_models import hf_v2

    return _train_hf(hf_v2(), HF_V2_STEPS)
