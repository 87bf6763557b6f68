#!/usr/bin/env python3
"""Capture time: a tiny Hugging Face DeepseekV3 and the full-size DeepSeek-V3 on the meta device.

    .venv/bin/python benchmarks/capture.py [--repeat 3]

Prints one JSON object and a table. The alternative measured beside mlacc's capture: plain
``torch.export.export`` of the same models (which the public-code layout's MoE cannot pass).
The issue's bars: tiny HF V3 under 10 s, full-size meta V3 under 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch


def _tiny_hf_v3() -> tuple[torch.nn.Module, tuple, dict]:
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    config = DeepseekV3Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        n_routed_experts=8,
        n_shared_experts=1,
        num_experts_per_tok=2,
        n_group=4,
        topk_group=2,
        q_lora_rank=32,
        kv_lora_rank=32,
        qk_nope_head_dim=16,
        qk_rope_head_dim=8,
        v_head_dim=16,
        first_k_dense_replace=1,
        max_position_embeddings=256,
        rope_scaling={
            "type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 64,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
        },
    )
    model = DeepseekV3ForCausalLM(config).eval()
    return model, (torch.randint(0, 512, (1, 16)),), {"use_cache": False}


def _time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import mlacc
    from mlacc.model_input import builtin_model

    rows = []
    hf, hf_args, hf_kwargs = _tiny_hf_v3()
    rows.append(
        {
            "model": "HF DeepseekV3 tiny (3 layers)",
            "mlacc_capture_s": _time(lambda: mlacc.capture(hf, hf_args, hf_kwargs), args.repeat),
            "torch_export_s": _time(
                lambda: torch.export.export(hf, hf_args, hf_kwargs), args.repeat
            ),
            "bar_s": 10.0,
        }
    )
    start = time.perf_counter()
    v3 = builtin_model("deepseek-v3")  # meta device: no weight data
    build = time.perf_counter() - start
    v3_args = (torch.zeros(1, 16, dtype=torch.int64, device="meta"),)
    capture_s = _time(lambda: mlacc.capture(v3, v3_args, cache_len=4096), 1)
    rows.append(
        {
            "model": "DeepSeek-V3 671B on meta (61 layers, forward+prefill+decode)",
            "mlacc_capture_s": capture_s + build,
            "torch_export_s": None,  # its MoE loop needs data: torch.export cannot trace it
            "bar_s": 60.0,
        }
    )
    report = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "results": rows,
    }
    print(json.dumps(report, indent=2))
    print(f"\n{'model':64s} {'mlacc capture':>14s} {'torch.export':>13s} {'bar':>6s}")
    for r in rows:
        export = "-" if r["torch_export_s"] is None else f"{r['torch_export_s']:.2f} s"
        print(f"{r['model']:64s} {r['mlacc_capture_s']:12.2f} s {export:>13s} {r['bar_s']:5.0f}s")


if __name__ == "__main__":
    main()
