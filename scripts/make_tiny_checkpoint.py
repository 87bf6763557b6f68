#!/usr/bin/env python3
"""Writes tiny random-weight checkpoint folders to try `mlacc compile DIR` and `mlacc generate`.

    .venv/bin/python scripts/make_tiny_checkpoint.py OUT

OUT/model       a Hugging Face DeepseekV3 folder (``save_pretrained``, float32, ~10 shards)
OUT/model-bf16  a wider one in bf16 (hidden 256: weights span several 128x128 FP8 blocks)
OUT/model-fp8   the same in DeepSeek-V3's FP8 format (e4m3 + ``weight_scale_inv``)
OUT/tokenizer   a BPE tokenizer for them (``tokenizer.json``, ``save_pretrained``)

The same builders make the test suite's folders (test/python/checkpoints.py).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "python"))

import torch
from checkpoints import fp8_folder, save_hf, tokenizer_folder
from hf_models import hf_v3

WIDE = dict(
    hidden_size=256,
    moe_intermediate_size=128,
    intermediate_size=384,
    q_lora_rank=128,
    kv_lora_rank=64,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    out = p.parse_args().out
    save_hf(hf_v3(), out / "model")
    wide = hf_v3(**WIDE)
    save_hf(copy.deepcopy(wide).to(torch.bfloat16), out / "model-bf16")
    fp8_folder(save_hf(wide.to(torch.bfloat16), out / "model-fp8"))
    tokenizer_folder(out / "tokenizer", vocab_size=120)
    for name in ("model", "model-bf16", "model-fp8", "tokenizer"):
        files = sorted((out / name).iterdir())
        size = sum(f.stat().st_size for f in files) / 2**20
        print(f"{out / name}: {len(files)} files, {size:.1f} MiB")


if __name__ == "__main__":
    main()
