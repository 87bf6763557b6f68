"""Compile-only check of the attention kernels for an NVIDIA target, no GPU needed.

Replays the launches the wrappers plan (on ``meta`` tensors, so DeepSeek-V3 shapes cost no
memory) through Triton's own JIT for ``GPUTarget("cuda", arch, 32)`` (`compile_only`) and reads
register and spill use of each cubin with the ``cuobjdump`` bundled with Triton. Must run with
``TRITON_INTERPRET`` unset (the interpreter replaces the kernels' JIT functions).

``python -m mlacc.runtime.triton._attention_aot [--arch 90]`` prints one JSON line per kernel.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from ..executors.triton_binaries import CompileOnly, compile_only, cubin_resources
from . import attention as A


def compile_launch(launch: A.Launch, session: CompileOnly) -> Any:
    """The `CompiledKernel` of one planned launch on the session's target."""
    arguments = dict(zip(launch.kernel.arg_names, launch.args, strict=False))
    arguments.update(launch.meta, num_warps=launch.num_warps, num_stages=launch.num_stages)
    return session.warmup(launch.kernel, arguments)


def launch_usage(launch: A.Launch, session: CompileOnly) -> dict[str, Any]:
    """Resource use of one planned launch compiled for the session's target."""
    compiled = compile_launch(launch, session)
    return {
        "kernel": launch.kernel.__name__,
        "num_warps": launch.num_warps,
        "num_stages": launch.num_stages,
        "shared": compiled.metadata.shared,
        **cubin_resources(compiled.asm["cubin"]),
        **{k: v for k, v in launch.meta.items() if k.startswith("BLOCK")},
    }


def v3_launches(batch: int = 32, context: int = 4096, prefill: int = 1024) -> list[A.Launch]:
    """The launches of the attention ops and the cache write (plain and with the kv norm) at
    DeepSeek-V3 shapes (H=128, C=512, dr=64, bf16)."""
    meta, bf16 = torch.device("meta"), torch.bfloat16
    h, c, dr, dn, dv = 128, 512, 64, 128, 128
    cos = torch.empty(context, dr // 2, device=meta)
    launches: list[A.Launch] = []

    def t(*shape: int, dtype: torch.dtype = bf16) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=meta)

    pos = t(batch, 1, dtype=torch.int32)
    for paged in (False, True):
        pool = t(batch * context // 64, 64, c + dr) if paged else t(batch, context, c + dr)
        table = t(batch, context // 64, dtype=torch.int32) if paged else None
        plan, _ = A.plan_latent_attention(
            t(batch, 1, h, c),
            t(batch, 1, h, dr),
            pool,
            pos,
            cos,
            cos,
            table,
            None,
            kv_lora_rank=c,
            softmax_scale=0.1,
            rope_layout="interleaved",
        )
        launches += plan
    qpos = t(1, prefill, dtype=torch.int32)
    plan, _ = A.plan_decoupled_attention(
        t(1, prefill, h, dn),
        t(1, prefill, h, dr),
        t(1, prefill, h, dn),
        t(1, prefill, dr),
        t(1, prefill, h, dv),
        qpos,
        qpos,
        cos,
        cos,
        None,
        softmax_scale=0.1,
        rope_layout="interleaved",
    )
    launches += plan
    plan, _ = A.plan_cache_update(
        t(batch, context, c + dr),
        t(batch, 1, c + dr),
        pos,
        cos,
        cos,
        None,
        rope_layout="interleaved",
    )
    launches += plan
    # the kv norm fused into the cache write: decode, and a prefill chunk
    for b, s, p in ((batch, 1, pos), (1, prefill, qpos)):
        plan, _ = A.plan_cache_update(
            t(b, context, c + dr),
            t(b, s, c + dr),
            p,
            cos,
            cos,
            None,
            rope_layout="interleaved",
            norm=(t(c), 1e-6),
        )
        launches += plan
    return launches


def main() -> None:
    """Prints the sm_<arch> resource use of each V3-shaped launch, one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", type=int, default=16384)
    args = parser.parse_args()
    with compile_only(args.arch) as session:
        for launch in v3_launches(args.batch, args.context):
            print(json.dumps(launch_usage(launch, session)), flush=True)


if __name__ == "__main__":
    main()
