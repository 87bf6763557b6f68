"""Sample programs every backend is tested on, built with the op builders.

`build_tiny_layer` is one DeepSeek-V3 decoder layer at toy size: RMSNorm → MLA (q low-rank,
decoupled RoPE with YaRN) → residual → RMSNorm → DeepSeekMoE (sigmoid router with correction
bias and group-limited top-k, routed experts, shared expert) → residual. The other samples
exercise the absorbed-MLA pieces, the grouped-MoE ops and the FP8 ops on their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ...dialects import fp8, mla, moe
from ...dialects._mlir import func, ir, torch_dialect
from ...dialects.core import weight
from ...dialects.mla import attention, rms_norm
from ...dialects.mla.rope import rope_params
from ...dialects.moe import experts, mlp, router
from ...dialects.types import tensor_info, vtensor_type


@dataclass(frozen=True)
class TinyLayerConfig:
    """Shapes of the demo layer (DeepSeek-V3's structure at toy size)."""

    batch: int = 1
    seq: int = 8
    dim: int = 64
    n_heads: int = 4
    q_lora_rank: int = 32
    kv_lora_rank: int = 32
    qk_nope_head_dim: int = 16
    qk_rope_head_dim: int = 8
    v_head_dim: int = 16
    n_experts: int = 8
    n_groups: int = 4
    topk_group: int = 2
    top_k: int = 2
    moe_inter_dim: int = 32
    route_scale: float = 2.5
    eps: float = 1e-6


def build_tiny_layer(cfg: TinyLayerConfig = TinyLayerConfig()) -> ir.Module:
    """Builds the demo module (`@forward(x, positions) -> y`) in the current context."""
    f32, i64 = "float32", "int64"
    b, s, d = cfg.batch, cfg.seq, cfg.dim
    h, dn, dr, dv = cfg.n_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
    x_t = vtensor_type((b, s, d), f32)
    module = ir.Module.create(loc=ir.Location.unknown())
    here = __file__.rsplit("/", 1)[-1]

    def loc(line: str) -> ir.Location:
        return ir.Location.name(line, ir.Location.file(here, 1, 1))

    def w(key: str, *shape: int) -> ir.Value:
        return weight(key, vtensor_type(shape, f32), loc=loc(key))

    with ir.InsertionPoint(module.body), loc("forward"):
        fn = func.FuncOp("forward", ir.FunctionType.get([x_t, vtensor_type((b, s), i64)], [x_t]))
        with ir.InsertionPoint(fn.add_entry_block()):
            x, positions = fn.arguments
            hn = rms_norm(x, w("attn_norm.weight", d), eps=cfg.eps)
            mscale = 0.1 * math.log(40.0) + 1.0
            attn = attention(
                hn,
                positions,
                weights={
                    "wq_a": w("attn.wq_a.weight", cfg.q_lora_rank, d),
                    "q_norm": w("attn.q_norm.weight", cfg.q_lora_rank),
                    "wq_b": w("attn.wq_b.weight", h * (dn + dr), cfg.q_lora_rank),
                    "wkv_a": w("attn.wkv_a.weight", cfg.kv_lora_rank + dr, d),
                    "kv_norm": w("attn.kv_norm.weight", cfg.kv_lora_rank),
                    "wkv_b": w("attn.wkv_b.weight", h * (dn + dv), cfg.kv_lora_rank),
                    "wo": w("attn.wo.weight", d, h * dv),
                },
                num_heads=h,
                q_lora_rank=cfg.q_lora_rank,
                kv_lora_rank=cfg.kv_lora_rank,
                qk_nope_head_dim=dn,
                qk_rope_head_dim=dr,
                v_head_dim=dv,
                softmax_scale=(dn + dr) ** -0.5 * mscale * mscale,
                eps=cfg.eps,
                rope=rope_params(layout="interleaved", factor=40.0, original_seq_len=4),
            ).out
            x1 = _add(x, attn)
            tokens = _view(rms_norm(x1, w("ffn_norm.weight", d), eps=cfg.eps), (b * s, d))
            gate_w, idx = router(
                tokens,
                w("ffn.gate.weight", cfg.n_experts, d),
                bias=w("ffn.gate.bias", cfg.n_experts),
                score_func="sigmoid",
                top_k=cfg.top_k,
                n_groups=cfg.n_groups,
                topk_group=cfg.topk_group,
                route_scale=cfg.route_scale,
            )
            inter, n = cfg.moe_inter_dim, cfg.n_experts
            routed = experts(
                tokens,
                gate_w,
                idx,
                w("ffn.experts.w1", n, inter, d),
                w("ffn.experts.w3", n, inter, d),
                w("ffn.experts.w2", n, d, inter),
            )
            shared = mlp(
                tokens,
                w("ffn.shared_experts.w1.weight", inter, d),
                w("ffn.shared_experts.w3.weight", inter, d),
                w("ffn.shared_experts.w2.weight", d, inter),
            )
            ffn = _view(_add(routed, shared), (b, s, d))
            func.ReturnOp([_add(x1, ffn)])
    return module


def _add(a: ir.Value, b: ir.Value) -> ir.Value:
    one = torch_dialect.ConstantIntOp(1).result
    return torch_dialect.AtenAddTensorOp(a.type, a, b, one).result


def _view(x: ir.Value, shape: tuple[int, ...]) -> ir.Value:
    dims = [torch_dialect.ConstantIntOp(n).result for n in shape]
    int_list = ir.Type.parse("!torch.list<int>")
    size = torch_dialect.PrimListConstructOp(int_list, dims).result
    out_t = vtensor_type(shape, tensor_info(x.type).dtype)
    return torch_dialect.AtenViewOp(out_t, x, size).result


def _entry(
    name: str, inputs: list[ir.Type], results: list[ir.Type]
) -> tuple[func.FuncOp, ir.Block]:
    fn = func.FuncOp(name, ir.FunctionType.get(inputs, results))
    return fn, fn.add_entry_block()


def build_torch_ops() -> ir.Module:
    """Plain torch-dialect ops: ``tanh(x @ w + b)``."""
    module = ir.Module.create(loc=ir.Location.unknown())
    with ir.InsertionPoint(module.body), ir.Location.file("torch_ops.py", 1, 1):
        x_t, w_t = vtensor_type((4, 16), "float32"), vtensor_type((16, 8), "float32")
        y_t = vtensor_type((4, 8), "float32")
        fn, block = _entry("forward", [x_t], [y_t])
        with ir.InsertionPoint(block):
            w = weight("w", w_t)
            b = weight("b", vtensor_type((8,), "float32"))
            mm = torch_dialect.AtenMmOp(y_t, fn.arguments[0], w).result
            func.ReturnOp([torch_dialect.AtenTanhOp(y_t, _add(mm, b)).result])
    return module


def build_latent_attention(batch: int = 2, seq: int = 4, cache_len: int = 8) -> ir.Module:
    """`@decode`: absorbed MLA (absorb_query, latent_attention over an updated latent cache,
    absorb_output); `@prefill`: the un-absorbed pieces (kv_expand, decoupled_attention)."""
    f32, i64 = "float32", "int64"
    h, dn, dr, dv, c = 4, 16, 8, 16, 32
    scale = (dn + dr) ** -0.5
    rope = rope_params(layout="rotate_half", factor=4.0, original_seq_len=4, cos_sin_scale=1.1)
    heads = {"num_heads": h, "qk_nope_head_dim": dn, "v_head_dim": dv}
    module = ir.Module.create(loc=ir.Location.unknown())
    with ir.InsertionPoint(module.body), ir.Location.file("latent_attention.py", 1, 1):
        q_nope_t = vtensor_type((batch, seq, h, dn), f32)
        q_pe_t = vtensor_type((batch, seq, h, dr), f32)
        cache_t = vtensor_type((batch, cache_len, c + dr), f32)
        pos_t = vtensor_type((batch, seq), i64)
        out_t = vtensor_type((batch, seq, h, dv), f32)
        wkv_b_t = vtensor_type((h * (dn + dv), c), f32)

        fn, block = _entry(
            "decode",
            [q_nope_t, q_pe_t, vtensor_type((batch, seq, c + dr), f32), cache_t, pos_t],
            [out_t, cache_t],
        )
        with ir.InsertionPoint(block):
            q_nope, q_pe, entries, cache, pos = fn.arguments
            wkv_b = weight("wkv_b", wkv_b_t)
            q_pe = mla.rotary_embedding(q_pe, pos, rope=rope)
            cache = mla.cache_update(cache, entries, pos)
            q_lat = mla.absorb_query(q_nope, wkv_b, **heads)
            ctx = mla.latent_attention(q_lat, q_pe, cache, pos, kv_lora_rank=c, softmax_scale=scale)
            func.ReturnOp([mla.absorb_output(ctx, wkv_b, **heads), cache])

        fn, block = _entry(
            "prefill",
            [
                q_nope_t,
                q_pe_t,
                vtensor_type((batch, seq, c), f32),
                vtensor_type((batch, seq, dr), f32),
                pos_t,
            ],
            [out_t],
        )
        with ir.InsertionPoint(block):
            q_nope, q_pe, c_kv, k_pe, pos = fn.arguments
            wkv_b = weight("wkv_b", wkv_b_t)
            k_nope, v = mla.kv_expand(c_kv, wkv_b, **heads)
            q_pe = mla.rotary_embedding(q_pe, pos, rope=rope)
            k_pe = mla.rotary_embedding(k_pe, pos, rope=rope)
            out = mla.decoupled_attention(
                q_nope, q_pe, k_nope, k_pe, v, pos, pos, softmax_scale=scale
            )
            func.ReturnOp([out])
    return module


def build_grouped_moe(
    tokens: int = 12, dim: int = 32, experts_: int = 8, inter: int = 16
) -> ir.Module:
    """Grouped MoE: softmax router → dispatch → grouped gate/up matmul → SwiGLU → grouped down
    matmul → combine."""
    f32 = "float32"
    module = ir.Module.create(loc=ir.Location.unknown())
    with ir.InsertionPoint(module.body), ir.Location.file("grouped_moe.py", 1, 1):
        x_t = vtensor_type((tokens, dim), f32)
        fn, block = _entry("forward", [x_t], [x_t])
        with ir.InsertionPoint(block):
            x = fn.arguments[0]
            gate = weight("gate.weight", vtensor_type((experts_, dim), f32))
            weights, idx = moe.router(x, gate, score_func="softmax", top_k=2, norm_topk_prob=False)
            xs, row_of, offsets = moe.dispatch(x, idx, num_experts=experts_, block_size=4)
            w13 = weight("experts.w13", vtensor_type((experts_, 2 * inter, dim), f32))
            w2 = weight("experts.w2", vtensor_type((experts_, dim, inter), f32))
            hidden = moe.swiglu(moe.grouped_matmul(xs, w13, offsets))
            y = moe.grouped_matmul(hidden, w2, offsets)
            func.ReturnOp([moe.combine(y, row_of, weights)])
    return module


def build_fp8_linear(tokens: int = 6, k: int = 256, n: int = 192) -> ir.Module:
    """FP8 linear layer: weight blocks [128, 128], activation blocks [128] per token."""
    f32 = "float32"
    module = ir.Module.create(loc=ir.Location.unknown())
    with ir.InsertionPoint(module.body), ir.Location.file("fp8_linear.py", 1, 1):
        x_t, w_t = vtensor_type((tokens, k), f32), vtensor_type((n, k), f32)
        fn, block = _entry("forward", [x_t], [vtensor_type((tokens, n), f32), w_t])
        with ir.InsertionPoint(block):
            w_q, w_s = fp8.quantize(weight("w", w_t), block_shape=[128, 128])
            x_q, x_s = fp8.quantize(fn.arguments[0], block_shape=[128])
            y = fp8.matmul(x_q, x_s, w_q, w_s, block_n=128, block_k=128)
            func.ReturnOp([y, fp8.dequantize(w_q, w_s, block_shape=[128, 128])])
    return module


SAMPLES: dict[str, Callable[[], ir.Module]] = {
    "torch_ops": build_torch_ops,
    "deepseek_v3_layer": build_tiny_layer,
    "latent_attention": build_latent_attention,
    "grouped_moe": build_grouped_moe,
    "fp8_linear": build_fp8_linear,
}
