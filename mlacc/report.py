"""The KV-cache and weight memory report of a module, read off its IR.

The latent cache per token per layer is the last dim of the caches the entry points update;
the MHA comparison uses the attention ops' own head attributes (``H * (nope + rope)`` key
values plus ``H * v`` value values per token per layer); weight bytes come from the
``mlacc.weight`` types, counted as they are kept: a weight whose every use ends, through ops
on weights alone, in an ``fp8.quantize`` counts as the e4m3 values and fp32 scales it becomes
(`--fp8`: about half of bf16). Nothing is recomputed from a model config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .dialects._mlir import ir
from .dialects.base import attr_to_python
from .dialects.types import TensorInfo, tensor_info

_BYTES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}

_HEAD_OPS = ("mla.attention", "mla.kv_expand", "mla.absorb_query", "mla.absorb_output")


@dataclass
class MemoryReport:
    """Latent cache (per token per layer, and in total) vs MHA; weight bytes by dtype."""

    layers: int = 0
    batch: int = 0
    cache_tokens: int = 0
    cache_values_per_token: int = 0
    mha_values_per_token: int = 0
    cache_dtype: str = ""
    # Paged layout: a pool of `cache_blocks` blocks of `cache_block_size` tokens per layer and
    # one int32 block table; 0 for a contiguous cache.
    cache_blocks: int = 0
    cache_block_size: int = 0
    # Latent caches of the multi-token-prediction layer (the `draft` entry points' own buffers,
    # same layout), allocated beside the `layers` ones.
    mtp_layers: int = 0
    weight_bytes: dict[str, int] = field(default_factory=dict)
    # entry point -> the attention form `--mla-absorb-weights` chose and why (its first op's)
    attention: dict[str, str] = field(default_factory=dict)

    @property
    def cache_bytes(self) -> int:
        """What the runtime allocates for the latent cache (`KVCache.nbytes`): every layer's
        buffer at the compiled batch and context length (paged: the pool and block table), the
        MTP layer's included."""
        per_value = _BYTES.get(self.cache_dtype, 4) * self.cache_values_per_token
        buffers = self.layers + self.mtp_layers
        if self.cache_blocks:
            pool = buffers * self.cache_blocks * self.cache_block_size * per_value
            table = self.batch * (self.cache_tokens // self.cache_block_size) * 4
            return pool + table
        return buffers * self.batch * self.cache_tokens * per_value

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cache_bytes": self.cache_bytes}

    def lines(self) -> list[str]:
        """A human-readable summary."""
        out = []
        if self.layers:
            ratio = self.mha_values_per_token / max(1, self.cache_values_per_token)
            out.append(
                f"KV cache per token per layer: {self.cache_values_per_token} values (latent) vs "
                f"{self.mha_values_per_token} for MHA with the same heads ({ratio:.1f}x smaller)"
            )
            layout = (
                f", paged: {self.cache_blocks} blocks of {self.cache_block_size} tokens"
                if self.cache_blocks
                else ""
            )
            mtp = f" + {self.mtp_layers} MTP" if self.mtp_layers else ""
            out.append(
                f"KV cache for batch {self.batch} x {self.cache_tokens} tokens x {self.layers}"
                f"{mtp} layers: {self.cache_bytes / 2**20:.1f} MiB ({self.cache_dtype}{layout})"
            )
        total = sum(self.weight_bytes.values())
        parts = ", ".join(f"{d}: {b / 2**30:.3f} GiB" for d, b in sorted(self.weight_bytes.items()))
        out.append(f"weights: {total / 2**30:.3f} GiB ({parts})")
        for entry, why in sorted(self.attention.items()):
            out.append(f"attention in {entry}: {why}")
        return out


def memory_report(module: ir.Module) -> MemoryReport:
    """The report for `module` (any stage: captured, absorbed, quantized)."""
    report = MemoryReport()
    weights: dict[str, TensorInfo] = {}
    caches_by_function: dict[str, list[tuple[TensorInfo, TensorInfo | None]]] = {}
    heads: dict[str, int] = {}
    function = [""]

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "func.func":
            function[0] = ir.StringAttr(op.attributes["sym_name"]).value
        elif op.name == "mlacc.weight":
            info = tensor_info(op.results[0].type)
            if info is not None:
                weights.setdefault(ir.StringAttr(op.attributes["key"]).value, info)
        elif op.name in _HEAD_OPS and not heads:
            heads.update(
                {
                    n: attr_to_python(op.attributes[n])
                    for n in ("num_heads", "qk_nope_head_dim", "v_head_dim")
                }
            )
        cache = _cache_of(op)
        if cache is not None:
            caches_by_function.setdefault(function[0], []).append(cache)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    report.attention = _attention_choices(module)
    quantized, stored = _quantized_weights(module)
    for key, info in weights.items():
        if key not in quantized:
            report.weight_bytes[info.dtype] = report.weight_bytes.get(info.dtype, 0) + _nbytes(info)
    for info in stored:
        report.weight_bytes[info.dtype] = report.weight_bytes.get(info.dtype, 0) + _nbytes(info)
    if caches_by_function and heads:
        # The MTP layer's draft entry points update their own cache, beside the main ones.
        drafts = [c for f, c in caches_by_function.items() if f.startswith("draft")]
        main = [c for f, c in caches_by_function.items() if not f.startswith("draft")]
        if main:
            report.mtp_layers = max(map(len, drafts), default=0)
        caches = max(main or drafts, key=len)
        report.layers = len(caches)
        cache, table = caches[0]
        report.batch, report.cache_tokens, report.cache_values_per_token = cache.shape
        report.cache_dtype = cache.dtype
        if table is not None:
            report.cache_blocks, report.cache_block_size = cache.shape[:2]
            report.batch, report.cache_tokens = table.shape[0], table.shape[1] * cache.shape[1]
        rope = report.cache_values_per_token - _latent_rank(module, report.cache_values_per_token)
        h = heads["num_heads"]
        report.mha_values_per_token = (
            h * (heads["qk_nope_head_dim"] + rope) + h * heads["v_head_dim"]
        )
    return report


def _attention_choices(module: ir.Module) -> dict[str, str]:
    """Entry point -> the form `--mla-absorb-weights` chose for its first attention, and why."""
    choices: dict[str, str] = {}
    for f in module.body.operations if hasattr(module, "body") else []:
        if f.operation.name != "func.func":
            continue
        name = ir.StringAttr(f.attributes["sym_name"]).value

        def visit(op: ir.Operation, name: str = name) -> ir.WalkResult:
            if name not in choices and "mlacc.absorb_reason" in op.attributes:
                form = ir.StringAttr(op.attributes["mlacc.absorb"]).value
                why = ir.StringAttr(op.attributes["mlacc.absorb_reason"]).value
                choices[name] = f"{form}: {why}"
            return ir.WalkResult.ADVANCE

        f.operation.walk(visit)
    return choices


def _quantized_weights(module: ir.Module) -> tuple[set[str], list[TensorInfo]]:
    """Weight keys kept only in FP8 form (every use reaches, through ops on weights alone, a
    weight-only `fp8.quantize`) and the types of those quantizations' results (each counted
    once: CSE'd quantizations are one op)."""
    weight_only: dict[ir.Value, bool] = {}
    quantizes: list[ir.Operation] = []
    weights: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "mlacc.weight":
            weights.append(op)
            weight_only[op.results[0]] = True
        elif len(op.regions) == 0 and op.results:
            # constants (no operands) are free; block arguments (the inputs) are not weights
            only = all(weight_only.get(v, False) for v in op.operands)
            for r in op.results:
                weight_only[r] = only
            if op.name == "fp8.quantize" and only:
                quantizes.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    ends_in_quantize: dict[ir.Value, bool] = {}

    def feeds_only_quantizes(value: ir.Value, depth: int = 0) -> bool:
        if value in ends_in_quantize:
            return ends_in_quantize[value]
        uses = [u.owner for u in value.uses]
        ok = bool(uses) and depth < 64
        for user in uses:
            if not ok:
                break
            if user.name == "fp8.quantize" and weight_only.get(user.results[0], False):
                continue
            ok = all(weight_only.get(r, False) for r in user.results) and all(
                feeds_only_quantizes(r, depth + 1) for r in user.results
            )
        ends_in_quantize[value] = ok
        return ok

    keys: set[str] = set()
    by_key: dict[str, bool] = {}
    for op in weights:
        key = ir.StringAttr(op.attributes["key"]).value
        by_key[key] = by_key.get(key, True) and feeds_only_quantizes(op.results[0])
    keys = {k for k, only in by_key.items() if only}
    # every entry point quantizes the same weights again: count each (weights, types) once
    distinct: dict[tuple, list[TensorInfo]] = {}
    for op in quantizes:
        sources = frozenset(_weight_keys(op.operands[0]))
        types = tuple(str(r.type) for r in op.results)
        infos = [tensor_info(r.type) for r in op.results]
        distinct.setdefault((sources, types), [t for t in infos if t is not None])
    return keys, [t for infos in distinct.values() for t in infos]


def _weight_keys(value: ir.Value, depth: int = 0) -> set[str]:
    """The keys of the `mlacc.weight` ops `value` is computed from."""
    owner = value.owner
    if not isinstance(owner, ir.Operation | ir.OpView) or depth > 64:
        return set()
    op = owner.operation if isinstance(owner, ir.OpView) else owner
    if op.name == "mlacc.weight":
        return {ir.StringAttr(op.attributes["key"]).value}
    keys: set[str] = set()
    for v in op.operands:
        keys |= _weight_keys(v, depth + 1)
    return keys


def _cache_of(op: ir.Operation) -> tuple[TensorInfo, TensorInfo | None] | None:
    """The latent cache an op updates (`mla.cache_update`'s, or `mla.attention`'s kv_cache)
    and its block table (None: contiguous)."""
    if op.name not in ("mla.cache_update", "mla.attention"):
        return None
    view = op.opview
    cache = view.cache if op.name == "mla.cache_update" else view.kv_cache
    if cache is None:
        return None
    table = view.block_table
    return tensor_info(cache.type), None if table is None else tensor_info(table.type)


def _latent_rank(module: ir.Module, entry: int) -> int:
    found = [entry]

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name in ("mla.attention", "mla.latent_attention"):
            found[0] = attr_to_python(op.attributes["kv_lora_rank"])
            return ir.WalkResult.INTERRUPT
        if op.name == "mla.kv_expand":
            found[0] = tensor_info(op.operands[0].type).shape[-1]
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found[0]


def _nbytes(info: TensorInfo) -> int:
    n = 1
    for d in info.shape:
        n *= d or 0
    return n * _BYTES.get(info.dtype, 4)
