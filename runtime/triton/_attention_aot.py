"""Compile-only check of the attention kernels for an NVIDIA target, no GPU needed.

Replays the launches the wrappers plan (on ``meta`` tensors, so DeepSeek-V3 shapes cost no
memory) through ``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))`` and reads
register and spill use of each cubin with the ``cuobjdump`` bundled with Triton. Must run with
``TRITON_INTERPRET`` unset (the interpreter replaces the kernels' JIT functions).

``python -m mlacc.runtime.triton._attention_aot [--arch 90]`` prints one JSON line per kernel.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import attention as A

_DTYPES = {
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float32: "fp32",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.uint8: "u8",
}


def _source(launch: A.Launch) -> ASTSource:
    """The ASTSource a JIT launch with these arguments would build (16-aligned pointers,
    ints specialized like the JIT: 1 as a constant, multiples of 16 marked divisible)."""
    fn = launch.kernel
    signature: dict[str, str] = {}
    constexprs: dict[str, Any] = dict(launch.meta)
    attrs: dict[tuple[int, ...], list[list[Any]]] = {}
    for i, (name, value) in enumerate(zip(fn.arg_names, launch.args, strict=False)):
        if isinstance(value, torch.Tensor):
            signature[name] = "*" + _DTYPES[value.dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            if value == 1:
                signature[name] = "constexpr"
                constexprs[name] = 1
                continue
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "fp32"
    for name in launch.meta:
        signature[name] = "constexpr"
    return ASTSource(fn, signature, constexprs=constexprs, attrs=attrs)


def _resources(cubin: bytes) -> dict[str, int]:
    """``REG``, ``STACK``, ``SHARED``, ``LOCAL`` of a cubin, from ``cuobjdump -res-usage``."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [str(tool), "-res-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    return {k: int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}


def compile_launch(launch: A.Launch, arch: int = 90) -> dict[str, Any]:
    """Compiles one planned launch for ``sm_<arch>``; its resource use and spill counts."""
    target = GPUTarget("cuda", arch, 32)
    options = {"num_warps": launch.num_warps, "num_stages": launch.num_stages}
    compiled = triton.compile(_source(launch), target=target, options=options)
    meta = compiled.metadata
    return {
        "kernel": launch.kernel.__name__,
        "num_warps": launch.num_warps,
        "num_stages": launch.num_stages,
        "shared": meta.shared,
        **_resources(compiled.asm["cubin"]),
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
    for launch in v3_launches(args.batch, args.context):
        print(json.dumps(compile_launch(launch, args.arch)), flush=True)


if __name__ == "__main__":
    main()
