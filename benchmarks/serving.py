#!/usr/bin/env python3
"""Decode step time against context length and layers: the runtime-owned latent cache updated
in place (contiguous and paged) against the value-semantics copy it replaced.

    .venv/bin/python benchmarks/serving.py [--target reference] [--quick]

A deepseek-v3-tiny structure (latent 32 + rope 8 per token per layer), batch 4, compiled with
a cache of `context` tokens; each row holds about `context - 2 * steps` tokens (random latents
written straight into the runtime's buffers: a step's cost does not depend on their values),
then decode steps are timed (median of `--steps`). "copy" runs the same artifact with the
executor told to copy each layer's cache instead of updating it (what every decode step did
before), alternating step by step with the in-place runs, so the two columns differ only by
the copy. Prints one JSON object and a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

import mlacc
from mlacc.frontend.models import DeepSeekModel, get_config
from mlacc.runtime.generate import Runner

BATCH, CHUNK = 4, 64


def build(layers: int) -> torch.nn.Module:
    config = get_config("deepseek-v3-tiny").replace(n_layers=layers, max_seq_len=1 << 16)
    torch.manual_seed(0)
    model = DeepSeekModel(config).eval()
    model.init_weights(0)
    return model


def step_ms(exe: Any, context: int, steps: int, modes: tuple[bool, ...]) -> list[float]:
    """Median decode step (ms) with every row holding `context - steps - 1` tokens, for each
    mode (True: in place, False: copy the cache); modes alternate step by step, so load on
    the machine hits them alike."""
    cache = exe.new_cache()
    runner = Runner(exe, cache)
    fill = context - steps * len(modes) - 1
    gen = torch.Generator().manual_seed(0)
    for layer in cache.layers:
        layer.copy_(torch.randn(layer.shape, generator=gen))
    for row in range(BATCH):
        cache.reserve(row, fill)
        cache.lengths[row] = fill
    times: list[list[float]] = [[] for _ in modes]
    try:
        for i in range(steps):
            for k, in_place in enumerate(modes):
                exe.in_place_cache = in_place
                start = time.perf_counter()
                runner.decode([i + 1] * BATCH)
                times[k].append(time.perf_counter() - start)
    finally:
        exe.in_place_cache = True
    return [1e3 * statistics.median(t) for t in times]


def measure(layers: int, context: int, target: str, steps: int) -> dict[str, Any]:
    model = build(layers)
    example = torch.zeros(BATCH, CHUNK, dtype=torch.int64)
    row: dict[str, Any] = {"layers": layers, "context": context}
    for layout, block in (("contiguous", None), ("paged", 64)):
        art = mlacc.compile(
            model, (example,), target=target, cache_len=context, cache_block_size=block
        )
        exe = art.load()
        if layout == "contiguous":
            row["contiguous_ms"], row["copy_ms"] = step_ms(exe, context, steps, (True, False))
            row["cache_mib"] = exe.new_cache().nbytes / 2**20
        else:
            (row["paged_ms"],) = step_ms(exe, context, steps, (True,))
    row["copy_over_inplace"] = row["copy_ms"] / row["contiguous_ms"]
    row["paged_over_contiguous"] = row["paged_ms"] / row["contiguous_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="reference")
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="two small points only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    contexts = [256, 1024] if args.quick else [256, 1024, 4096, 16384]
    layer_counts = [2] if args.quick else [2, 4, 8]
    rows = [measure(3, c, args.target, args.steps) for c in contexts]
    rows += [
        measure(n, 4096 if not args.quick else 256, args.target, args.steps) for n in layer_counts
    ]
    doc = {
        "benchmark": "serving_decode_step",
        "target": args.target,
        "batch": BATCH,
        "machine": platform.processor() or platform.machine(),
        "threads": 1,
        "rows": rows,
    }
    print(json.dumps(doc, indent=2))
    print()
    columns = (
        "layers | context | cache MiB | in place (contiguous) | paged | copy (before) "
        "| copy / in place | paged / contiguous"
    )
    print(f"| {columns} |")
    print("|---" * 8 + "|")
    for r in rows:
        cells = [
            str(r["layers"]),
            str(r["context"]),
            f"{r['cache_mib']:.1f}",
            f"{r['contiguous_ms']:.2f} ms",
            f"{r['paged_ms']:.2f} ms",
            f"{r['copy_ms']:.2f} ms",
            f"{r['copy_over_inplace']:.2f}x",
            f"{r['paged_over_contiguous']:.2f}x",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
