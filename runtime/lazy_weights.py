"""Weights produced on demand, so that a checkpoint streams into an artifact tensor by tensor.

`LazyWeights` is a read-only mapping key -> tensor whose entries know their shape and dtype
up front and load (or compute) their data only when asked. Saving an artifact walks it in
`streamed` order (grouped by source file: a checkpoint's shards one after the other) and
drops each tensor once written, so peak memory stays near the largest source file instead
of the whole model. Run side: torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from .errors import MlaccError

# progress(done_bytes, total_bytes, key): called after each tensor of a stream
StreamProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class WeightEntry:
    """One tensor: its shape and dtype, how to produce it, and the group it streams with."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    load: Callable[[], torch.Tensor]
    group: str = ""

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * torch.empty((), dtype=self.dtype).element_size()


class LazyWeights(Mapping[str, torch.Tensor]):
    """A mapping whose tensors are produced on access (each access produces it again)."""

    def __init__(self, entries: Mapping[str, WeightEntry]) -> None:
        self.entries = dict(entries)

    @staticmethod
    def of(weights: Mapping[str, torch.Tensor]) -> LazyWeights:
        """`weights` as a LazyWeights (in-memory tensors become entries that return them)."""
        if isinstance(weights, LazyWeights):
            return weights
        return LazyWeights(
            {
                k: WeightEntry(tuple(t.shape), t.dtype, (lambda t=t: t), group="")
                for k, t in weights.items()
            }
        )

    def __getitem__(self, key: str) -> torch.Tensor:
        entry = self.entries[key]
        tensor = entry.load()
        if tuple(tensor.shape) != entry.shape or tensor.dtype != entry.dtype:
            got = f"{str(tensor.dtype).removeprefix('torch.')}{list(tensor.shape)}"
            want = f"{str(entry.dtype).removeprefix('torch.')}{list(entry.shape)}"
            raise MlaccError(f"weight '{key}' loaded as {got}, expected {want}")
        return tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def nbytes(self) -> int:
        """Bytes of all tensors, without loading any."""
        return sum(e.nbytes for e in self.entries.values())

    def subset(self, keys: Iterator[str] | set[str] | frozenset[str] | list[str]) -> LazyWeights:
        """The entries named by `keys` (in this mapping's order)."""
        wanted = set(keys)
        return LazyWeights({k: e for k, e in self.entries.items() if k in wanted})

    def merged(self, other: Mapping[str, torch.Tensor]) -> LazyWeights:
        """These entries plus `other`'s (which win on equal keys)."""
        return LazyWeights({**self.entries, **LazyWeights.of(other).entries})

    def order(self) -> list[str]:
        """Keys grouped by source (first appearance of each group), the streaming order."""
        groups: dict[str, list[str]] = {}
        for key, entry in self.entries.items():
            groups.setdefault(entry.group, []).append(key)
        return [k for keys in groups.values() for k in keys]

    def streamed(
        self, progress: StreamProgress | None = None
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """(key, tensor) in `order`, each produced when reached; `progress` after each."""
        total, done = self.nbytes, 0
        for key in self.order():
            tensor = self[key]
            yield key, tensor
            done += self.entries[key].nbytes
            if progress is not None:
                progress(done, total, key)

    def materialize(self) -> dict[str, torch.Tensor]:
        """Every tensor in memory, as a plain dict."""
        return dict(self.streamed())
