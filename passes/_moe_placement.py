"""Expert placement for `--moe-group-experts`: DeepSeek's EPLB on one layer, as a pure function.

EPLB (DeepSeek's expert-parallel load balancer) does two things: replicate the hottest experts
(each new replica goes to the expert whose per-replica load is highest), then pack the
replicas into the compute groups with equal slot counts per group, heaviest first, each into
the least-loaded group that still has a free slot. A replica carries ``load / replicas`` of its
expert. Nothing here touches MLIR; ties break by lowest expert id, then lowest group index, so
the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PlacementError(ValueError):
    """The experts cannot fill the groups with equal slot counts under the given limits."""


@dataclass(frozen=True)
class Placement:
    """Where each expert lives.

    Attributes:
        groups: per group, the expert ids it holds (ascending; a replicated expert appears in
            several groups).
        loads: per group, its expected load (sum of its replicas' loads, in the histogram's
            units; uniform load counts 1 per expert).
        replicas: per expert, how many copies it has (1 = not replicated).
    """

    groups: tuple[tuple[int, ...], ...]
    loads: tuple[float, ...]
    replicas: tuple[int, ...]

    @property
    def max_load(self) -> float:
        return max(self.loads)

    @property
    def imbalance(self) -> float:
        """max / mean group load (1.0 = perfectly balanced)."""
        mean = sum(self.loads) / len(self.loads)
        return self.max_load / mean if mean > 0 else 1.0


def replicate(loads: Sequence[float], extra: int, max_per_expert: int) -> list[int]:
    """Replica counts after adding `extra` replicas, each to the expert whose per-replica load
    is highest (ties: lowest id), never more than `max_per_expert` copies of one expert."""
    counts = [1] * len(loads)
    for _ in range(extra):
        best = None
        for e, load in enumerate(loads):
            if counts[e] >= max_per_expert:
                continue
            if best is None or load / counts[e] > loads[best] / counts[best]:
                best = e
        if best is None:
            break
        counts[best] += 1
    return counts


def pack(loads: Sequence[float], counts: Sequence[int], num_groups: int) -> Placement:
    """Balanced packing of the replicas into `num_groups` groups of equal slot count.

    Replicas go heaviest first (ties: lowest expert id) to the least-loaded group with a free
    slot that does not already hold that expert (ties: lowest group index).
    """
    total = sum(counts)
    if total % num_groups:
        raise PlacementError(f"{total} expert slots do not split into {num_groups} equal groups")
    slots = total // num_groups
    items = sorted(
        ((loads[e] / counts[e], e) for e in range(len(loads)) for _ in range(counts[e])),
        key=lambda item: (-item[0], item[1]),
    )
    members: list[list[int]] = [[] for _ in range(num_groups)]
    group_load = [0.0] * num_groups
    for load, e in items:
        open_groups = [g for g in range(num_groups) if len(members[g]) < slots]
        fresh = [g for g in open_groups if e not in members[g]] or open_groups
        g = min(fresh, key=lambda g: (group_load[g], g))
        members[g].append(e)
        group_load[g] += load
    return Placement(
        groups=tuple(tuple(sorted(m)) for m in members),
        loads=tuple(group_load),
        replicas=tuple(counts),
    )


def place_experts(
    num_experts: int,
    num_groups: int,
    histogram: Sequence[float] | None = None,
    max_replicas: int = 0,
) -> Placement:
    """EPLB-style placement of `num_experts` experts on `num_groups` compute groups.

    Args:
        num_experts: routed experts of the layer.
        num_groups: compute groups (cores, chips); each gets the same number of expert slots.
        histogram: per-expert token counts from a calibration run; None means uniform load.
        max_replicas: at most this many extra replicas of hot experts. Every replica count
            ``r <= max_replicas`` that makes ``num_experts + r`` a multiple of `num_groups` is
            tried; the placement with the lowest maximum group load wins (ties: fewer replicas).

    Raises:
        PlacementError: bad arguments, or no allowed replica count fills the groups equally.
    """
    if num_experts <= 0:
        raise PlacementError(f"need at least one expert, got {num_experts}")
    if num_groups <= 0:
        raise PlacementError(f"need at least one group, got {num_groups}")
    if max_replicas < 0:
        raise PlacementError(f"max_replicas must be >= 0, got {max_replicas}")
    if histogram is None:
        loads = [1.0] * num_experts
    else:
        loads = [float(v) for v in histogram]
        if len(loads) != num_experts:
            raise PlacementError(
                f"the histogram has {len(loads)} entries, expected one per expert ({num_experts})"
            )
        if any(v < 0 for v in loads):
            raise PlacementError("histogram entries must be >= 0")
    best: Placement | None = None
    for extra in range(max_replicas + 1):
        if (num_experts + extra) % num_groups:
            continue
        counts = replicate(loads, extra, max_per_expert=num_groups)
        if sum(counts) != num_experts + extra:
            continue  # every expert is already on every group
        candidate = pack(loads, counts, num_groups)
        if best is None or candidate.max_load < best.max_load - 1e-9 * max(1.0, best.max_load):
            best = candidate
    if best is None:
        raise PlacementError(
            f"{num_experts} experts do not fill {num_groups} groups with equal slot counts "
            f"using at most {max_replicas} extra replica(s)"
        )
    return best
