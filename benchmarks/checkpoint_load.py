#!/usr/bin/env python3
"""Peak memory of compiling a checkpoint folder: streamed shard by shard vs loaded whole.

    .venv/bin/python benchmarks/checkpoint_load.py [--layers 12] [--shard-mb 100] [--keep DIR]

Writes a random-weight DeepSeek-V3-like checkpoint (mlacc's reference model, bf16, Hugging
Face names, ``model.safetensors.index.json``) and compiles it for ``reference`` into an
artifact three ways, each in a fresh process whose peak RSS (``VmHWM``) is measured:

* ``timing-only``: ``mlacc compile DIR --timing-only`` (capture and passes, no weight data: the
  floor every compile pays);
* ``streamed``: ``mlacc.compile(DIR)`` then ``save`` (weights read one tensor at a time);
* ``whole``: the obvious alternative, ``load_checkpoint`` into the model, then compile the
  in-memory model and save.

Prints one JSON object and a table: peak RSS, peak RSS above the timing-only floor, and that
excess over the largest shard and over the model.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

CHILD = r"""
import sys, time, torch, mlacc
from pathlib import Path
folder, mode, out = sys.argv[1:4]
start = time.perf_counter()
ids = torch.zeros(1, 16, dtype=torch.int64)
if mode == "whole":
    from mlacc.checkpoint_dir import read_folder_config
    from mlacc.frontend.models import DeepSeekModel, load_checkpoint
    described = read_folder_config(folder)
    with torch.device("meta"):
        model = DeepSeekModel(described.config).to(described.dtype).eval()
    load_checkpoint(model, folder)
    art = mlacc.compile(model, (ids,), target="reference")
else:
    art = mlacc.compile(folder, (ids,), target="reference", timing_only=mode == "timing-only")
art.save(out)
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, inherited at fork)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(int(hwm.split()[1]) * 1024, time.perf_counter() - start)
"""


def write_checkpoint(folder: Path, layers: int, shard_bytes: int) -> dict[str, int]:
    """A random bf16 checkpoint in shards of about `shard_bytes`; returns its sizes."""
    from mlacc.frontend.models import DeepSeekModel, ModelConfig, hf_name_map

    config = ModelConfig(
        vocab_size=32000,
        dim=1024,
        inter_dim=4096,
        moe_inter_dim=512,
        n_layers=layers,
        n_dense_layers=1,
        n_heads=8,
        n_routed_experts=32,
        n_shared_experts=1,
        n_activated_experts=4,
        n_expert_groups=4,
        n_limited_groups=2,
        score_func="sigmoid",
        route_scale=2.5,
        q_lora_rank=384,
        kv_lora_rank=256,
        qk_nope_head_dim=64,
        qk_rope_head_dim=32,
        v_head_dim=64,
        use_correction_bias=True,
        group_score="top2_sum",
        norm_topk_prob=True,
    )
    folder.mkdir(parents=True, exist_ok=True)
    hf = {ours: theirs for theirs, ours in hf_name_map(config).items()}
    with torch.device("meta"):
        model = DeepSeekModel(config).to(torch.bfloat16)
    shards: list[dict[str, torch.Tensor]] = [{}]
    sizes = [0]
    gen = torch.Generator().manual_seed(0)
    for name, param in model.state_dict().items():
        tensor = (torch.randn(param.shape, generator=gen) * 0.02).to(torch.bfloat16)
        if sizes[-1] and sizes[-1] + tensor.numel() * 2 > shard_bytes:
            shards.append({})
            sizes.append(0)
        shards[-1][hf.get(name, name)] = tensor
        sizes[-1] += tensor.numel() * 2
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": sum(sizes)}, "weight_map": weight_map})
    )
    (folder / "config.json").write_text(json.dumps(_hf_config(config)))
    return {"model_bytes": sum(sizes), "largest_shard_bytes": max(sizes), "shards": len(shards)}


def _hf_config(c) -> dict:
    return {
        "model_type": "deepseek_v3",
        "torch_dtype": "bfloat16",
        "vocab_size": c.vocab_size,
        "hidden_size": c.dim,
        "intermediate_size": c.inter_dim,
        "moe_intermediate_size": c.moe_inter_dim,
        "num_hidden_layers": c.n_layers,
        "first_k_dense_replace": c.n_dense_layers,
        "num_attention_heads": c.n_heads,
        "n_routed_experts": c.n_routed_experts,
        "n_shared_experts": c.n_shared_experts,
        "num_experts_per_tok": c.n_activated_experts,
        "n_group": c.n_expert_groups,
        "topk_group": c.n_limited_groups,
        "routed_scaling_factor": c.route_scale,
        "norm_topk_prob": True,
        "q_lora_rank": c.q_lora_rank,
        "kv_lora_rank": c.kv_lora_rank,
        "qk_nope_head_dim": c.qk_nope_head_dim,
        "qk_rope_head_dim": c.qk_rope_head_dim,
        "v_head_dim": c.v_head_dim,
        "max_position_embeddings": 4096,
        "num_nextn_predict_layers": 0,
    }


def measure(folder: Path, mode: str, out: Path) -> tuple[int, float]:
    """Peak RSS (bytes) and wall seconds of one compile + save in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), mode, str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} compile failed: {proc.stderr.strip().splitlines()[-1]}")
    rss, seconds = proc.stdout.split()
    return int(rss), float(seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--shard-mb", type=int, default=100)
    p.add_argument("--keep", help="write the checkpoint here (default: a temporary folder)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "ckpt"
        sizes = write_checkpoint(folder, args.layers, args.shard_mb * 2**20)
        results = {}
        for mode in ("timing-only", "streamed", "whole"):
            rss, seconds = measure(folder, mode, Path(tmp) / f"{mode}.mlacc")
            results[mode] = {"peak_rss_bytes": rss, "seconds": seconds}
    floor = results["timing-only"]["peak_rss_bytes"]
    for r in results.values():
        r["above_floor_bytes"] = r["peak_rss_bytes"] - floor
        r["above_floor_over_largest_shard"] = r["above_floor_bytes"] / sizes["largest_shard_bytes"]
        r["above_floor_over_model"] = r["above_floor_bytes"] / sizes["model_bytes"]
    report = {"machine": platform.processor() or platform.machine(), **sizes, "runs": results}
    print(json.dumps(report, indent=1))
    mib = 2**20
    print(
        f"\nmodel {sizes['model_bytes'] / mib:.0f} MiB in {sizes['shards']} shards "
        f"(largest {sizes['largest_shard_bytes'] / mib:.0f} MiB)"
    )
    print(
        f"{'compile':12s} {'peak RSS':>10s} {'above floor':>12s} {'/shard':>7s} "
        f"{'/model':>7s} {'wall':>7s}"
    )
    for mode, r in results.items():
        print(
            f"{mode:12s} {r['peak_rss_bytes'] / mib:8.0f} M {r['above_floor_bytes'] / mib:10.0f} M "
            f"{r['above_floor_over_largest_shard']:7.2f} {r['above_floor_over_model']:7.2f} "
            f"{r['seconds']:6.1f}s"
        )


if __name__ == "__main__":
    main()
