"""Expert routing for the MoE cost: which experts a call's tokens go to, and how many rows each.

A functional run knows: the dispatch's expert offsets give every expert's (block-padded) row
count, and `RoutingRecorder` keeps the per-layer token counts a run routed (``mlacc run
--record-routing FILE``). A timing-only compile draws a typical call from a distribution
(`RoutingSpec`: ``uniform``, ``zipf:S`` or a recorded histogram file): every token picks its
``top_k`` distinct routed experts from it (seeded per layer, so results are reproducible),
and each shared expert gets every token.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

FORMAT = "mlacc-routing/1"


@dataclass(frozen=True)
class RoutingSpec:
    """A routing distribution over the routed experts: ``uniform``, ``zipf`` with exponent
    `s` (expert popularity ~ 1 / rank^s, ranks shuffled per layer), or `histogram` (token
    counts per layer, from `RoutingRecorder`; ``None`` keys the sum over layers)."""

    kind: str = "uniform"
    s: float = 0.0
    histogram: dict[int | None, tuple[float, ...]] = field(default_factory=dict, compare=False)
    source: str = "uniform"

    def probabilities(self, experts: int, layer: int | None) -> tuple[float, ...]:
        """The chance each of `experts` routed experts is picked, for `layer` (Zipf: by
        popularity rank, most popular first)."""
        if self.kind == "zipf":
            weights = [1.0 / (rank + 1) ** self.s for rank in range(experts)]
        elif self.kind == "histogram":
            counts = self.histogram.get(layer, self.histogram.get(None, ()))
            if len(counts) < experts:
                raise InputError(
                    f"routing histogram '{self.source}' has {len(counts)} experts for layer "
                    f"{layer}; the model routes over {experts}"
                )
            weights = [max(float(c), 0.0) for c in counts[:experts]]
        else:
            weights = [1.0] * experts
        total = sum(weights)
        if total <= 0:
            weights, total = [1.0] * experts, float(experts)
        return tuple(w / total for w in weights)


def parse_routing(spec: str | os.PathLike[str] | None) -> RoutingSpec:
    """``uniform`` (default), ``zipf:S`` (S > 0) or a histogram file written by ``mlacc run
    --record-routing``.

    Raises:
        InputError: anything else, or an unreadable or malformed histogram file.
    """
    text = "uniform" if spec is None or str(spec) == "" else os.fspath(spec)
    if text == "uniform":
        return RoutingSpec()
    if text.startswith("zipf:"):
        try:
            s = float(text[5:])
        except ValueError:
            s = -1.0
        if not (math.isfinite(s) and s > 0):
            raise InputError(f"routing '{text}': zipf needs a positive exponent, e.g. zipf:1.2")
        return RoutingSpec("zipf", s, source=text)
    return load_histogram(text)


def load_histogram(path: str | os.PathLike[str]) -> RoutingSpec:
    """The histogram `RoutingRecorder.save` wrote, as a `RoutingSpec`."""
    label = os.fspath(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"routing '{label}' is not 'uniform', 'zipf:S' or a readable histogram file: {err}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"routing histogram '{label}': not an {FORMAT} file")
    layers: dict[int | None, tuple[float, ...]] = {}
    total: list[float] = []
    for key, counts in (data.get("layers") or {}).items():
        if not isinstance(counts, list) or not all(isinstance(c, int | float) for c in counts):
            raise InputError(f"routing histogram '{label}': layer {key} is not a list of counts")
        layers[int(key)] = tuple(float(c) for c in counts)
        total = [a + b for a, b in zip(total, counts, strict=False)] if total else list(counts)
        total += list(counts[len(total) :])
    if not layers:
        raise InputError(f"routing histogram '{label}' has no layers")
    layers[None] = tuple(total)
    return RoutingSpec("histogram", histogram=layers, source=label)


def sample_rows(
    spec: RoutingSpec,
    layer: int | None,
    *,
    tokens: int,
    top_k: int,
    routed: int,
    shared: int,
    block: int,
) -> tuple[float, ...]:
    """Block-padded rows per expert (routed, then shared) of one typical call: each of
    `tokens` tokens picks `top_k` distinct routed experts from `spec`, every shared expert
    takes every token. One draw serves every layer of a uniform or Zipf spec (Zipf's
    popularity ranks are shuffled per layer, so the hot experts differ); a histogram is
    drawn per layer."""
    key = layer if spec.kind == "histogram" else None
    counts = _draw(spec, key, tokens, top_k, routed)
    if spec.kind == "zipf":
        order = list(range(routed))
        random.Random(layer or 0).shuffle(order)
        counts = tuple(counts[i] for i in order)
    rows = [math.ceil(c / block) * block for c in counts]
    return tuple(float(r) for r in rows + [math.ceil(tokens / block) * block] * shared)


@functools.lru_cache(maxsize=1024)
def _draw(spec, layer, tokens, top_k, routed) -> tuple[int, ...]:
    """Tokens per routed expert of one seeded draw (numpy: the compile side and `mlacc-opt`
    run without torch)."""
    import numpy as np

    p = np.asarray(spec.probabilities(routed, layer), dtype=np.float64)
    k = min(top_k, routed)
    if not (tokens and k):
        return (0,) * routed
    # k distinct experts per token, drawn without replacement in proportion to p: the top k
    # of p / Exp(1) noise (the Gumbel-top-k trick)
    noise = np.random.default_rng(1000 + (layer or 0)).exponential(size=(tokens, routed))
    picks = np.argpartition(-(p / noise), k - 1, axis=1)[:, :k]
    return tuple(int(c) for c in np.bincount(picks.ravel(), minlength=routed))


class RoutingRecorder:
    """Token counts per expert per layer over a run's dispatches (shared experts included,
    after the routed ones), written by `save` for a later timing-only compile."""

    def __init__(self) -> None:
        self.layers: dict[int, list[int]] = {}

    def add(self, layer: int | None, indices: Any, experts: int) -> None:
        """Counts the expert ids in `indices` (a dispatch's ``[tokens, k]`` tensor) for
        `layer`."""
        counts = indices.reshape(-1).long().cpu().bincount(minlength=experts).tolist()
        key = -1 if layer is None else int(layer)
        old = self.layers.get(key, [0] * len(counts))
        self.layers[key] = [a + b for a, b in zip(old, counts, strict=True)]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the histogram as JSON (`FORMAT`)."""
        data = {"format": FORMAT, "layers": {str(k): v for k, v in sorted(self.layers.items())}}
        Path(path).write_text(json.dumps(data) + "\n", encoding="utf-8")
