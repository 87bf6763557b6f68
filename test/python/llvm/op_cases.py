"""One entry point per op lowering of the `llvm` target, with random inputs of small random
shapes: the numerics tests compile them all into one module (one native object)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mlacc.dialects import make_context
from mlacc.dialects._mlir import func, ir
from mlacc.dialects.fp8.ops import dequantize, quantize
from mlacc.dialects.fp8.ops import grouped_matmul as fp8_grouped_matmul
from mlacc.dialects.fp8.ops import matmul as fp8_matmul
from mlacc.dialects.mla.ops import (
    absorb_output,
    absorb_query,
    cache_gather,
    cache_update,
    decoupled_attention,
    kv_expand,
    latent_attention,
    rms_norm,
    rope_tables,
    rotary_embedding,
)
from mlacc.dialects.mla.rope import rope_params
from mlacc.dialects.moe.ops import combine, dispatch, grouped_matmul, mlp, router, swiglu
from mlacc.dialects.parsing import module_text
from mlacc.dialects.types import vtensor_type

Spec = tuple[tuple[int, ...], str]


@dataclass
class Case:
    """An entry point: input specs, how to build its body, how to make its inputs."""

    inputs: list[Spec]
    build: Callable[..., list[ir.Value]]
    make: Callable[[torch.Generator], list[torch.Tensor]]


def _randn(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=g).to(dtype)


def _positions(g: torch.Generator, b: int, s: int, slots: int) -> torch.Tensor:
    """Distinct increasing positions per row, inside ``[0, slots)``."""
    return torch.stack([torch.randperm(slots, generator=g)[:s].sort().values for _ in range(b)])


def build_cases(seed: int = 0) -> dict[str, Case]:
    """The cases, with shapes drawn from `seed`."""
    rnd = random.Random(seed)
    cases: dict[str, Case] = {}
    yarn = rope_params(
        layout="interleaved",
        factor=4.0,
        original_seq_len=64,
        beta_fast=32.0,
        beta_slow=1.0,
        cos_sin_scale=1.1,
    )
    half = rope_params(layout="rotate_half", theta=500.0)

    b, s, d = rnd.randint(1, 3), rnd.randint(2, 6), rnd.choice([24, 48, 64])
    cases["rms_norm"] = Case(
        [((b, s, d), "float32"), ((d,), "float32")],
        lambda x, w: [rms_norm(x, w, eps=1e-6)],
        lambda g: [_randn(g, b, s, d), _randn(g, d)],
    )
    cases["rms_norm_bf16"] = Case(
        [((s, d), "bfloat16"), ((d,), "bfloat16")],
        lambda x, w: [rms_norm(x, w, eps=1e-5)],
        lambda g: [_randn(g, s, d, dtype=torch.bfloat16), _randn(g, d, dtype=torch.bfloat16)],
    )
    h, dr = rnd.randint(1, 4), rnd.choice([4, 8, 16])
    cases["rotary_interleaved_yarn"] = Case(
        [((b, s, h, dr), "float32"), ((b, s), "int64")],
        lambda x, p: [rotary_embedding(x, p, rope=yarn)],
        lambda g: [_randn(g, b, s, h, dr), _positions(g, b, s, 200)],
    )
    cases["rotary_rotate_half"] = Case(
        [((b, s, dr), "float32"), ((b, s), "int64")],
        lambda x, p: [rotary_embedding(x, p, rope=half)],
        lambda g: [_randn(g, b, s, dr), _positions(g, b, s, 50)],
    )
    cases["rope_tables"] = Case(
        [], lambda: list(rope_tables(rope=yarn, dim=dr, max_positions=40)), lambda g: []
    )
    heads, dn, dv, c = rnd.randint(1, 4), rnd.choice([8, 16]), rnd.choice([8, 16]), 32
    wkv = ((heads * (dn + dv), c), "float32")
    kw = {"num_heads": heads, "qk_nope_head_dim": dn, "v_head_dim": dv}
    cases["absorb_query"] = Case(
        [((b, s, heads, dn), "float32"), wkv],
        lambda q, w: [absorb_query(q, w, **kw)],
        lambda g: [_randn(g, b, s, heads, dn), _randn(g, *wkv[0])],
    )
    cases["absorb_output"] = Case(
        [((b, s, heads, c), "float32"), wkv],
        lambda x, w: [absorb_output(x, w, **kw)],
        lambda g: [_randn(g, b, s, heads, c), _randn(g, *wkv[0])],
    )
    t = rnd.randint(s + 2, 20)
    cases["kv_expand"] = Case(
        [((b, t, c), "float32"), wkv],
        lambda lat, w: list(kv_expand(lat, w, **kw)),
        lambda g: [_randn(g, b, t, c), _randn(g, *wkv[0])],
    )
    cache = ((b, t, c + dr), "float32")
    scale = 0.3
    cases["latent_attention"] = Case(
        [((b, s, heads, c), "float32"), ((b, s, heads, dr), "float32"), cache, ((b, s), "int64")],
        lambda q, qpe, kv, p: [
            latent_attention(q, qpe, kv, p, kv_lora_rank=c, softmax_scale=scale)
        ],
        lambda g: [
            _randn(g, b, s, heads, c),
            _randn(g, b, s, heads, dr),
            _randn(g, *cache[0]),
            _positions(g, b, s, t),
        ],
    )

    def latent_with_tables(q, qpe, kv, p):
        cos, sin = rope_tables(rope=half, dim=dr, max_positions=t)
        return [
            latent_attention(
                q,
                qpe,
                kv,
                p,
                kv_lora_rank=c,
                softmax_scale=scale,
                rope_cos=cos,
                rope_sin=sin,
                rope_layout="rotate_half",
            )
        ]

    cases["latent_attention_tables"] = Case(
        cases["latent_attention"].inputs, latent_with_tables, cases["latent_attention"].make
    )
    tk = rnd.randint(2, 9)
    cases["decoupled_attention"] = Case(
        [
            ((b, s, heads, dn), "float32"),
            ((b, s, heads, dr), "float32"),
            ((b, tk, heads, dn), "float32"),
            ((b, tk, dr), "float32"),
            ((b, tk, heads, dv), "float32"),
            ((b, s), "int64"),
            ((b, tk), "int64"),
        ],
        lambda *a: [decoupled_attention(*a, softmax_scale=scale)],
        lambda g: [
            _randn(g, b, s, heads, dn),
            _randn(g, b, s, heads, dr),
            _randn(g, b, tk, heads, dn),
            _randn(g, b, tk, dr),
            _randn(g, b, tk, heads, dv),
            _positions(g, b, s, 12),
            _positions(g, b, tk, 12),
        ],
    )

    def update_with_tables(kv, ent, p):
        cos, sin = rope_tables(rope=yarn, dim=dr, max_positions=t)
        return [cache_update(kv, ent, p, rope_cos=cos, rope_sin=sin, rope_layout="interleaved")]

    cases["cache_update_tables"] = Case(
        [cache, ((b, s, c + dr), "float32"), ((b, s), "int64")],
        update_with_tables,
        lambda g: [_randn(g, *cache[0]), _randn(g, b, s, c + dr), _positions(g, b, s, t)],
    )
    bs = rnd.choice([2, 4])
    blocks = rnd.randint(-(-s // bs), 4)  # at least the s distinct positions
    pool = ((b * blocks + 1, bs, c + dr), "float32")
    table = ((b, blocks), "int32")

    def make_table(g: torch.Generator) -> torch.Tensor:
        """Distinct blocks per row, shuffled over the pool (block 0 unused)."""
        ids = torch.randperm(b * blocks, generator=g)[: b * blocks] + 1
        return ids.reshape(b, blocks).to(torch.int32)

    cases["cache_gather"] = Case(
        [pool, table],
        lambda kv, tab: [cache_gather(kv, tab)],
        lambda g: [_randn(g, *pool[0]), make_table(g)],
    )
    cases["latent_attention_paged"] = Case(
        [
            ((b, s, heads, c), "float32"),
            ((b, s, heads, dr), "float32"),
            pool,
            table,
            ((b, s), "int64"),
        ],
        lambda q, qpe, kv, tab, p: [
            latent_attention(q, qpe, kv, p, kv_lora_rank=c, softmax_scale=scale, block_table=tab)
        ],
        lambda g: [
            _randn(g, b, s, heads, c),
            _randn(g, b, s, heads, dr),
            _randn(g, *pool[0]),
            make_table(g),
            _positions(g, b, s, blocks * bs),
        ],
    )
    cases["cache_update_paged"] = Case(
        [pool, ((b, s, c + dr), "float32"), table, ((b, s), "int64")],
        lambda kv, ent, tab, p: [cache_update(kv, ent, p, block_table=tab, rope_layout="none")],
        lambda g: [
            _randn(g, *pool[0]),
            _randn(g, b, s, c + dr),
            make_table(g),
            _positions(g, b, s, blocks * bs),
        ],
    )
    n, dm, experts = rnd.randint(3, 9), rnd.choice([16, 32]), 8
    cases["router_sigmoid_groups"] = Case(
        [((n, dm), "float32"), ((experts, dm), "float32"), ((experts,), "float32")],
        lambda x, w, bias: list(
            router(
                x,
                w,
                bias=bias,
                score_func="sigmoid",
                top_k=3,
                n_groups=4,
                topk_group=2,
                group_score="top2_sum",
                route_scale=2.5,
            )
        ),
        lambda g: [_randn(g, n, dm), _randn(g, experts, dm), _randn(g, experts) * 0.1],
    )
    cases["router_softmax_greedy"] = Case(
        [((n, dm), "float32"), ((experts, dm), "float32")],
        lambda x, w: list(router(x, w, score_func="softmax", top_k=2, norm_topk_prob=False)),
        lambda g: [_randn(g, n, dm), _randn(g, experts, dm)],
    )
    cases["router_softmax_group_max"] = Case(
        [((n, dm), "float32"), ((experts, dm), "float32")],
        lambda x, w: list(
            router(
                x,
                w,
                score_func="softmax",
                top_k=2,
                n_groups=2,
                topk_group=1,
                group_score="max",
                route_scale=1.5,
            )
        ),
        lambda g: [_randn(g, n, dm), _randn(g, experts, dm)],
    )
    inter, top = rnd.choice([8, 16]), 2

    def grouped_moe(x, idx, w, wg, wd):
        xs, rows, offs = dispatch(x, idx, num_experts=experts, block_size=4)
        gate_up = grouped_matmul(xs, wg, offs)
        act = swiglu(gate_up)
        down = grouped_matmul(act, wd, offs)
        return [xs, rows, offs, gate_up, act, combine(down, rows, w)]

    cases["dispatch_grouped_swiglu_combine"] = Case(
        [
            ((n, dm), "float32"),
            ((n, top), "int64"),
            ((n, top), "float32"),
            ((experts, 2 * inter, dm), "float32"),
            ((experts, dm, inter), "float32"),
        ],
        grouped_moe,
        lambda g: [
            _randn(g, n, dm),
            torch.randint(0, experts, (n, top), generator=g),
            torch.rand(n, top, generator=g),
            _randn(g, experts, 2 * inter, dm),
            _randn(g, experts, dm, inter),
        ],
    )

    def fused_moe(x, idx, w, wg, wd):
        """gate/up's only use is the swiglu: lowered as one kernel (`FUSIONS`)."""
        xs, rows, offs = dispatch(x, idx, num_experts=experts, block_size=4)
        act = swiglu(grouped_matmul(xs, wg, offs))
        return [act, combine(grouped_matmul(act, wd, offs), rows, w)]

    cases["dispatch_grouped_swiglu_fused"] = Case(
        cases["dispatch_grouped_swiglu_combine"].inputs,
        fused_moe,
        cases["dispatch_grouped_swiglu_combine"].make,
    )
    cases["mlp"] = Case(
        [
            ((b, s, dm), "float32"),
            ((inter, dm), "float32"),
            ((inter, dm), "float32"),
            ((dm, inter), "float32"),
        ],
        lambda *a: [mlp(*a)],
        lambda g: [
            _randn(g, b, s, dm),
            _randn(g, inter, dm),
            _randn(g, inter, dm),
            _randn(g, dm, inter),
        ],
    )
    nt, few = 37, 3  # many tokens on few experts: 16-row blocks plus single rows
    # bf16 with K a multiple of 32 and N of 8: the AVX512-BF16 dot kernels (where the CPU has
    # them), in a dense MLP (4-row tiles) and in grouped expert matmuls (row blocks + rows)
    bf = "bfloat16"
    dmb, ib = 64, 32

    def bf16_moe(x, idx, w, wg, wd):
        xs, rows, offs = dispatch(x, idx, num_experts=few, block_size=4)
        act = swiglu(grouped_matmul(xs, wg, offs))
        return [combine(grouped_matmul(act, wd, offs), rows, w)]

    cases["mlp_bf16"] = Case(
        [((b, 4, dmb), bf), ((ib, dmb), bf), ((ib, dmb), bf), ((dmb, ib), bf)],
        lambda *a: [mlp(*a)],
        lambda g: [
            _randn(g, b, 4, dmb, dtype=torch.bfloat16),
            _randn(g, ib, dmb, dtype=torch.bfloat16),
            _randn(g, ib, dmb, dtype=torch.bfloat16),
            _randn(g, dmb, ib, dtype=torch.bfloat16),
        ],
    )
    cases["grouped_matmul_bf16"] = Case(
        [
            ((nt, dmb), bf),
            ((nt, top), "int64"),
            ((nt, top), bf),
            ((few, 2 * ib, dmb), bf),
            ((few, dmb, ib), bf),
        ],
        bf16_moe,
        lambda g: [
            _randn(g, nt, dmb, dtype=torch.bfloat16),
            torch.randint(0, few, (nt, top), generator=g),
            torch.rand(nt, top, generator=g).bfloat16(),
            _randn(g, few, 2 * ib, dmb, dtype=torch.bfloat16),
            _randn(g, few, dmb, ib, dtype=torch.bfloat16),
        ],
    )
    kq, nq = rnd.choice([96, 256]), rnd.choice([64, 160])

    def fp8_linear(x, w):
        wq, ws = quantize(w, block_shape=[128, 128], pow2_scale=False)
        xq, xs = quantize(x, block_shape=[128], pow2_scale=True)
        y = fp8_matmul(xq, xs, wq, ws, block_n=128, block_k=128, out_dtype="float32")
        back = dequantize(xq, xs, block_shape=[128], out_dtype="float32")
        return [xq, xs, wq, ws, y, back]

    cases["fp8_quantize_matmul_dequantize"] = Case(
        [((b, s, kq), "float32"), ((nq, kq), "float32")],
        fp8_linear,
        lambda g: [_randn(g, b, s, kq) * 3, _randn(g, nq, kq) * 0.05],
    )

    cases["fp8_matmul_partial_k_block"] = Case(
        [((b, s, 160), "float32"), ((nq, 160), "float32")],
        fp8_linear,
        lambda g: [_randn(g, b, s, 160) * 3, _randn(g, nq, 160) * 0.05],
    )

    def fp8_grouped(x, idx, w):
        xs, _, offs = dispatch(x, idx, num_experts=experts, block_size=4)
        wq, ws = quantize(w, block_shape=[128, 128], pow2_scale=False)
        xq, xsc = quantize(xs, block_shape=[128], pow2_scale=False)
        return [
            fp8_grouped_matmul(xq, xsc, wq, ws, offs, block_n=128, block_k=128, out_dtype="float32")
        ]

    cases["fp8_grouped_matmul"] = Case(
        [((n, kq), "float32"), ((n, top), "int64"), ((experts, nq, kq), "float32")],
        fp8_grouped,
        lambda g: [
            _randn(g, n, kq),
            torch.randint(0, experts, (n, top), generator=g),
            _randn(g, experts, nq, kq) * 0.05,
        ],
    )

    def fp8_grouped_swiglu(x, idx, w):
        xs, _, offs = dispatch(x, idx, num_experts=experts, block_size=4)
        wq, ws = quantize(w, block_shape=[128, 128], pow2_scale=False)
        xq, xsc = quantize(xs, block_shape=[128], pow2_scale=False)
        y = fp8_grouped_matmul(xq, xsc, wq, ws, offs, block_n=128, block_k=128, out_dtype="float32")
        return [swiglu(y)]

    cases["fp8_grouped_matmul_swiglu_fused"] = Case(
        cases["fp8_grouped_matmul"].inputs, fp8_grouped_swiglu, cases["fp8_grouped_matmul"].make
    )

    # many tokens on few experts: segments of 16-row blocks plus single rows (prefill)

    def blocked_moe(x, idx, w, wg, wd):
        xs, rows, offs = dispatch(x, idx, num_experts=few, block_size=4)
        act = swiglu(grouped_matmul(xs, wg, offs))
        return [act, combine(grouped_matmul(act, wd, offs), rows, w)]

    cases["grouped_matmul_row_blocks"] = Case(
        [
            ((nt, dm), "float32"),
            ((nt, top), "int64"),
            ((nt, top), "float32"),
            ((few, 2 * inter, dm), "float32"),
            ((few, dm, inter), "float32"),
        ],
        blocked_moe,
        lambda g: [
            _randn(g, nt, dm),
            torch.randint(0, few, (nt, top), generator=g),
            torch.rand(nt, top, generator=g),
            _randn(g, few, 2 * inter, dm),
            _randn(g, few, dm, inter),
        ],
    )

    def fp8_blocked(x, idx, w):
        xs, _, offs = dispatch(x, idx, num_experts=few, block_size=4)
        wq, ws = quantize(w, block_shape=[128, 128], pow2_scale=False)
        xq, xsc = quantize(xs, block_shape=[128], pow2_scale=False)
        y = fp8_grouped_matmul(xq, xsc, wq, ws, offs, block_n=128, block_k=128, out_dtype="float32")
        return [y]

    cases["fp8_grouped_matmul_row_blocks"] = Case(
        [((nt, kq), "float32"), ((nt, top), "int64"), ((few, nq, kq), "float32")],
        fp8_blocked,
        lambda g: [
            _randn(g, nt, kq),
            torch.randint(0, few, (nt, top), generator=g),
            _randn(g, few, nq, kq) * 0.05,
        ],
    )
    return cases


def module_of(cases: dict[str, Case]) -> str:
    """MLIR text of a module with one public function per case."""
    with make_context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            for name, case in cases.items():
                types = [vtensor_type(shape, dtype) for shape, dtype in case.inputs]
                f = func.FuncOp(name, (types, []))
                with ir.InsertionPoint(f.add_entry_block()):
                    outs = case.build(*f.arguments)
                    func.ReturnOp(outs)
                f.attributes["function_type"] = ir.TypeAttr.get(
                    ir.FunctionType.get(types, [o.type for o in outs])
                )
        return module_text(module)
