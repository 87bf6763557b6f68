"""What each graph op asks of the accelerator: its work as `MatmulWork`, `AttentionWork` or
`StreamWork`, read off the op's operand and result types.

Ops that move no data on the device are *free*: views (the DMA engines read strided
tensors), constants, weight references and anything computed from weights alone (prepared
once when the weights are loaded, not on every call). Ops without a rule of their own
stream their operands through the vector engine (``STREAM_OPS_PER_ELEMENT`` vector ops per
output element).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from mlacc.dialects._mlir import ir
from mlacc.dialects.types import TensorInfo, tensor_info

from .tiling import AttentionWork, MatmulWork, Routing, StreamWork, TilingError

Work = MatmulWork | AttentionWork | StreamWork

VIEW_OPS = frozenset(
    {
        "torch.aten.reshape",
        "torch.aten.view",
        "torch.aten._reshape_alias",
        "torch.aten.unsqueeze",
        "torch.aten.squeeze",
        "torch.aten.squeeze.dim",
        "torch.aten.expand",
        "torch.aten.slice.Tensor",
        "torch.aten.select.int",
        "torch.aten.t",
        "torch.aten.transpose.int",
        "torch.aten.permute",
        "torch.aten.alias",
        "torch.aten.detach",
        "torch.aten.flatten.using_ints",
        "torch.aten.unflatten.int",
        "torch.aten.contiguous",
    }
)

DTYPE_NAMES = {"float8_e4m3fn": "fp8", "bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}

# Vector ops per output element of elementwise ops (default 1).
STREAM_OPS_PER_ELEMENT = {
    "mla.rms_norm": 4.0,
    "mla.rotary_embedding": 3.0,
    "moe.swiglu": 5.0,
    "fp8.quantize": 4.0,
    "fp8.dequantize": 2.0,
    "torch.aten.silu": 4.0,
    "torch.aten.softmax.int": 5.0,
    "torch.aten._softmax": 5.0,
    "torch.aten.sigmoid": 4.0,
    "torch.aten.exp": 2.0,
    "torch.aten.rsqrt": 2.0,
}


def elt(info: TensorInfo) -> int:
    """Bytes per element of `info`'s dtype."""
    name = info.dtype
    if name.startswith("float8"):
        return 1
    if name in ("bfloat16", "float16", "int16"):
        return 2
    if name in ("float64", "int64"):
        return 8
    if name in ("bool", "int8", "uint8"):
        return 1
    return 4


def numel(info: TensorInfo) -> int:
    return math.prod(d if d is not None else 1 for d in info.shape)


def nbytes(info: TensorInfo) -> int:
    return numel(info) * elt(info)


def _infos(values) -> list[TensorInfo]:
    return [i for i in (tensor_info(v.type) for v in values) if i is not None]


def _named(op: ir.OpView) -> dict[str, TensorInfo | None]:
    """Operand infos by field name (dialect ops), else by position ("0", "1", ...)."""
    fields = getattr(type(op), "operand_fields", None)
    if fields is None:
        return {str(i): tensor_info(v.type) for i, v in enumerate(op.operands)}
    out: dict[str, TensorInfo | None] = {}
    for f in fields():
        value = getattr(op, f.name)
        out[f.name] = tensor_info(value.type) if isinstance(value, ir.Value) else None
    return out


def _arg_index(op: ir.OpView, name: str) -> int:
    """Position of operand field `name` among the op's fields (the plan's argument order)."""
    return [f.name for f in type(op).operand_fields()].index(name)


def _matmul_dtype(*infos: TensorInfo) -> str:
    names = {DTYPE_NAMES.get(i.dtype, "fp32") for i in infos}
    if names == {"fp8"}:
        return "fp8"
    for wide in ("fp32", "bf16", "fp16"):
        if wide in names:
            return wide
    return "fp32"


def _rows_times_weight(
    x: TensorInfo,
    w: TensorInfo,
    out_bytes: int,
    *,
    n: int | None = None,
    dtype: str = "",
    epilogue: float = 0.0,
) -> MatmulWork:
    """Every row of ``x [..., k]`` times a ``[n, k]`` weight (a linear layer's shape)."""
    k = x.shape[-1]
    return MatmulWork(
        1,
        numel(x) // k,
        n or w.shape[0],
        k,
        elt(x),
        elt(w),
        out_bytes,
        dtype or _matmul_dtype(x, w),
        epilogue,
    )


def _linear(op: ir.OpView, info: dict) -> Work:
    return _rows_times_weight(info["0"], info["1"], elt(_infos(op.results)[0]))


def _mm(op: ir.OpView, info: dict) -> Work:
    a, b = info["0"], info["1"]
    out = _infos(op.results)[0]
    batch = numel(out) // (out.shape[-1] * (out.shape[-2] if out.rank > 1 else 1))
    m = a.shape[-2] if a.rank > 1 else 1
    return MatmulWork(
        batch, m, b.shape[-1], a.shape[-1], elt(a), elt(b), elt(out), _matmul_dtype(a, b)
    )


def _fp8_matmul(op: ir.OpView, info: dict) -> Work:
    out = _infos(op.results)[0]
    return _rows_times_weight(info["x_q"], info["w_q"], elt(out), dtype="fp8", epilogue=2.0)


def _grouped(op: ir.OpView, info: dict) -> Work:
    x, w = (info["x"], info["w"]) if info.get("x") else (info["x_q"], info["w_q"])
    out = _infos(op.results)[0]
    experts = w.shape[0]
    routing = _routing(op, experts)
    assignments = routing.tokens * routing.picks if routing else x.shape[0]
    # Tiles are sized for uniform routing (expected distinct experts); the lowering then
    # costs the rows a call actually routes (`KernelSchedule.with_routing`).
    active = max(1, min(experts, round(experts * (1 - (1 - 1 / experts) ** assignments))))
    rows = math.ceil(assignments / active)
    if routing is not None:  # segments are padded to the dispatch block: tiles cover a block
        rows = math.ceil(rows / routing.block) * routing.block
    dtype = "fp8" if x.dtype.startswith("float8") else _matmul_dtype(x, w)
    return MatmulWork(
        active,
        rows,
        w.shape[1],
        w.shape[2],
        elt(x),
        elt(w),
        elt(out),
        dtype,
        2.0 if dtype == "fp8" else 0.0,
        expert_parallel=True,
        imbalance=_imbalance(op),
        routing=routing,
    )


def _owner(value: ir.Value) -> ir.OpView | None:
    owner = value.owner
    return owner.opview if isinstance(owner, ir.Operation) else owner


def _routing(op: ir.OpView, experts: int) -> Routing | None:
    """The routing shape of a grouped matmul over `experts` weights: that of the
    `moe.dispatch` whose offsets it reads."""
    offsets = _arg_index(op, "expert_offsets")
    return _dispatch_routing(_owner(op.operands[offsets]), experts, offsets)


def _routing_of_indices(indices: ir.Value, picks: int) -> tuple[int, int] | None:
    """(routed experts, top-k) of the `moe.router` a few ops above `indices` (the expert ids
    of a dispatch: the router's, concatenated with the shared experts' ids); None if none."""
    frontier, seen = [indices], 0
    while frontier and seen < 16:
        owner = _owner(frontier.pop())
        seen += 1
        if not isinstance(owner, ir.OpView):
            continue
        if owner.operation.name == "moe.router":
            weight = tensor_info(owner.operands[1].type)
            top_k = ir.IntegerAttr(owner.attributes["top_k"]).value
            return (weight.shape[0] if weight is not None else picks), top_k
        frontier.extend(owner.operands)
    return None


def _imbalance(op: ir.OpView) -> float:
    """max / mean group load of the layer's expert placement (``mlacc.placement_load``, which
    `--moe-group-experts` puts on the layer's first grouped matmul; found through the expert
    offsets the layer's grouped matmuls share); 1.0 (uniform) without one."""
    carriers = [op.operation]
    for value in op.operands:
        carriers += [use.owner for use in value.uses]
    for carrier in carriers:
        if "mlacc.placement_load" in carrier.attributes:
            loads = [
                float(ir.FloatAttr(a).value)
                for a in ir.ArrayAttr(carrier.attributes["mlacc.placement_load"])
            ]
            mean = sum(loads) / len(loads) if loads else 0.0
            return max(loads) / mean if mean > 0 else 1.0
    return 1.0


def _absorb_query(op: ir.OpView, info: dict) -> Work:
    q, w = info["q_nope"], info["wkv_b"]
    out = _infos(op.results)[0]
    b, s, h, dn = q.shape
    return MatmulWork(h, b * s, w.shape[1], dn, elt(q), elt(w), elt(out), _matmul_dtype(q, w))


def _absorb_output(op: ir.OpView, info: dict) -> Work:
    c, w = info["ctx"], info["wkv_b"]
    out = _infos(op.results)[0]
    b, s, h, lora = c.shape
    return MatmulWork(h, b * s, out.shape[-1], lora, elt(c), elt(w), elt(out), _matmul_dtype(c, w))


def _kv_expand(op: ir.OpView, info: dict) -> Work:
    return _rows_times_weight(info["latent"], info["wkv_b"], elt(_infos(op.results)[0]))


def _router(op: ir.OpView, info: dict) -> Work:
    # fp32 scores; sigmoid/softmax, bias, group and top-k selection as the epilogue
    return _rows_times_weight(info["x"], info["weight"], 4, epilogue=12.0)


def _mlp(op: ir.OpView, info: dict) -> Work:
    # gate, up and down as one product with the same MACs and weight bytes: [m, d] x [d, 3i]
    x, wg = info["x"], info["w_gate"]
    return _rows_times_weight(x, wg, elt(x), n=3 * wg.shape[0], epilogue=5.0 / 3.0)


def _slots(cache: TensorInfo, table: TensorInfo | None) -> int:
    """Key slots per sequence of a contiguous or paged (pool + block table) cache."""
    return cache.shape[1] * (1 if table is None else table.shape[1])


def _latent_attention(op: ir.OpView, info: dict) -> Work:
    q, cache = info["q_latent"], info["kv_cache"]
    b, s, h, lora = q.shape
    return AttentionWork(
        b,
        s,
        h,
        _slots(cache, info.get("block_table")),
        cache.shape[2],
        lora,
        cache.shape[2] * elt(cache),
        elt(q),
        _matmul_dtype(q, cache),
        _arg_index(op, "positions"),
    )


def _decoupled_attention(op: ir.OpView, info: dict) -> Work:
    qn, qp, kn, v = info["q_nope"], info["q_pe"], info["k_nope"], info["v"]
    b, s, h, dn = qn.shape
    dk = dn + qp.shape[-1]
    per_token = (kn.shape[-1] + qp.shape[-1] + v.shape[-1]) * elt(kn)
    # heads do not share keys: each (sequence, head) streams its own K/V
    return AttentionWork(
        b * h,
        s,
        1,
        kn.shape[1],
        dk,
        v.shape[-1],
        per_token,
        elt(qn),
        _matmul_dtype(qn, kn),
        _arg_index(op, "q_positions"),
    )


def _fanout(indices: TensorInfo, op: ir.OpView) -> int:
    """Routed experts per token (the router's top-k; shared experts run where the token is)."""
    routing = _routing_of_indices(op.operands[1], indices.shape[-1])
    return routing[1] if routing else indices.shape[-1]


def _dispatch(op: ir.OpView, info: dict) -> Work:
    # Rows of the sorted buffer past the routed ones are block padding: never written. Over
    # the links a token goes once to each chip holding one of its experts, in the dtype the
    # experts read (FP8 values + scales when the rows are quantized for FP8 experts).
    x, idx = info["x"], info["indices"]
    routed = numel(idx) * x.shape[-1] * elt(x)
    tokens = numel(x) // x.shape[-1]
    row = x.shape[-1] * _link_element_bytes(op, x)
    return StreamWork(
        tokens,
        nbytes(x) + nbytes(idx),
        routed,
        2.0 * numel(idx),
        tokens * row,
        "dispatch",
        fanout=_fanout(idx, op),
        routing=_dispatch_routing(op),
    )


def _dispatch_routing(
    dispatch: ir.OpView | None, experts: int | None = None, offsets: int = 0
) -> Routing | None:
    """The routing shape of a `moe.dispatch` (None if `dispatch` is not one): tokens and
    picks per token, and the routed/shared split and top-k of the `moe.router` whose indices
    it sorts (all `experts` routed, top-k = picks, without one). `experts` defaults to the
    dispatch's; `offsets` is the step argument holding the expert offsets."""
    if not isinstance(dispatch, ir.OpView) or dispatch.operation.name != "moe.dispatch":
        return None
    indices = tensor_info(dispatch.operands[1].type)
    if indices is None or indices.rank != 2:
        return None
    tokens, picks = indices.shape
    if experts is None:
        experts = ir.IntegerAttr(dispatch.attributes["num_experts"]).value
    routed, top_k = _routing_of_indices(dispatch.operands[1], picks) or (experts, picks)
    block = ir.IntegerAttr(dispatch.attributes["block_size"]).value
    return Routing(tokens, picks, top_k, routed, experts - routed, block, offsets)


def _link_element_bytes(op: ir.OpView, x: TensorInfo) -> float:
    """Bytes per value of the dispatched rows: FP8 + scales when an `fp8.quantize` reads
    them, else their own dtype."""
    for use in op.results[0].uses:
        user = getattr(use.owner, "operation", use.owner)
        if user.name == "fp8.quantize":
            values = sum(nbytes(i) for i in _infos(user.results))
            return values / max(1, numel(tensor_info(op.results[0].type)))
    return float(elt(x))


def _combine(op: ir.OpView, info: dict) -> Work:
    # Reads the routed rows of y (not its padding) and the routing weights; each chip sends
    # a token's expert outputs back summed per chip.
    y, weights = info["y"], info["weights"]
    out = _infos(op.results)[0]
    routed = numel(weights) * y.shape[-1] * elt(y)
    tokens = numel(out) // out.shape[-1]
    return StreamWork(
        tokens,
        routed + nbytes(weights),
        nbytes(out),
        2.0 * routed / elt(y),
        tokens * y.shape[-1] * elt(y),
        "combine",
        fanout=_fanout(weights, op),
        routing=_dispatch_routing(_owner(op.operands[1])),
    )


def _cache_update(op: ir.OpView, info: dict) -> Work:
    # written in place: only the new entries move (the semantics return a new cache value)
    e = info["entries"]
    return StreamWork(numel(e) // e.shape[-1], nbytes(e), nbytes(e), 3.0 * numel(e))


def _cache_gather(op: ir.OpView, info: dict) -> Work:
    # every sequence's slots, read through the block table and written contiguously
    out = _infos(op.results)[0]
    rows = numel(out) // out.shape[-1]
    return StreamWork(rows, nbytes(out) + nbytes(info["block_table"]), nbytes(out), 0.0)


def _embedding(op: ir.OpView, info: dict) -> Work:
    out = _infos(op.results)[0]
    rows = numel(out) // out.shape[-1]
    return StreamWork(rows, nbytes(out) + nbytes(info["1"]), nbytes(out), 0.0)


RULES: dict[str, Callable[[ir.OpView, dict], Work]] = {
    "torch.aten.linear": _linear,
    "torch.aten.mm": _mm,
    "torch.aten.bmm": _mm,
    "torch.aten.matmul": _mm,
    "torch.aten.embedding": _embedding,
    "fp8.matmul": _fp8_matmul,
    "fp8.grouped_matmul": _grouped,
    "moe.grouped_matmul": _grouped,
    "moe.router": _router,
    "moe.mlp": _mlp,
    "moe.dispatch": _dispatch,
    "moe.combine": _combine,
    "mla.absorb_query": _absorb_query,
    "mla.absorb_output": _absorb_output,
    "mla.kv_expand": _kv_expand,
    "mla.latent_attention": _latent_attention,
    "mla.decoupled_attention": _decoupled_attention,
    "mla.cache_update": _cache_update,
    "mla.cache_gather": _cache_gather,
}


def stream(op: ir.OpView) -> StreamWork:
    """The default rule: read every tensor operand, write every result, k ops per output."""
    ins, outs = _infos(op.operands), _infos(op.results)
    out_elems = sum(map(numel, outs))
    rows = (
        max(1, out_elems // outs[0].shape[-1]) if outs and outs[0].rank and outs[0].shape[-1] else 1
    )
    ops = STREAM_OPS_PER_ELEMENT.get(op.operation.name, 1.0) * out_elems
    return StreamWork(rows, sum(map(nbytes, ins)), sum(map(nbytes, outs)), ops)


# Whole-layer ops as captured: the default pipeline decomposes them into ops with rules.
NO_COST_MODEL = {
    "mla.attention": "mla-absorb-weights",
    "moe.experts": "moe-group-experts",
}


def workload(op: ir.OpView) -> Work:
    """The work `op` asks of the device; TilingError for ops without a cost model."""
    name = op.operation.name
    if name in NO_COST_MODEL:
        raise TilingError(
            f"no cost model for the captured '{name}'; run --{NO_COST_MODEL[name]} (part of "
            "the default pipeline) first"
        )
    rule = RULES.get(op.operation.name)
    return rule(op, _named(op)) if rule is not None else stream(op)


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def layer_of_key(key: str) -> int | None:
    """The transformer layer a weight key belongs to (``layers.3.attn.wq.weight`` -> 3)."""
    m = _LAYER.search(key)
    return int(m.group(1)) if m else None
