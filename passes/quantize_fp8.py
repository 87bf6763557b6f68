"""`--quantize-fp8`: DeepSeek-V3's block-scaled FP8 recipe for the model's matmuls.

Weights go to float8_e4m3fn with ``weight_block x weight_block`` block scales, activations are
quantized per token per ``weight_block`` channels at run time, products accumulate in fp32 and
the result keeps the activation's dtype:

* ``torch.aten.linear(x, w, none)`` whose ``w`` is computed from ``mlacc.weight`` ops only
  becomes::

      w_q, w_s = fp8.quantize(w, block_shape=[B, B])   # weight-only: folded at compile time
      x_q, x_s = fp8.quantize(x, block_shape=[B])      # at run time
      y = fp8.matmul(x_q, x_s, w_q, w_s, block_n=B, block_k=B, out_dtype=<x's dtype>)

* ``moe.grouped_matmul(x, w [E, N, K], offsets)`` (after ``--moe-group-experts``) on a
  weight-only ``w`` becomes the same with ``fp8.grouped_matmul`` (scales of w
  ``[E, N/B, K/B]``).
* ``moe.mlp`` (dense FFN layers, shared experts that were not merged), with ``mlp`` on, is
  first decomposed into ``linear(silu(linear(x, w_gate)) * linear(x, w_up), w_down)`` and its
  three linears are quantized like any other.

Matmuls whose weight keys contain one of ``exclude`` stay in high precision, as DeepSeek-V3
keeps the LM head, the embedding and the router. (Embedding lookups and the router are no
matmuls here anyway; `moe.router` and the mla ops that take weights directly, e.g.
`mla.kv_expand`, are not touched.)

Decisions are recorded as discardable attributes: ``mlacc.fp8`` (string, the weight keys) on
every ``fp8.matmul`` / ``fp8.grouped_matmul`` the pass builds, ``mlacc.fp8_skip`` (string, why)
on a linear or grouped matmul left in high precision. The pass is idempotent: a second run finds
only the skipped matmuls and records the same reasons again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dialects._mlir import ir
from ..dialects.fp8.ops import grouped_matmul as fp8_grouped_matmul
from ..dialects.fp8.ops import matmul as fp8_matmul
from ..dialects.fp8.ops import quantize
from ..dialects.types import FLOAT_DTYPES, tensor_info
from . import _torch_builders as tb
from .registry import PassError, option, register_pass

FLAG = "quantize-fp8"

# DeepSeek-V3 keeps these in high precision. Key spellings: mlacc's reference model and the
# public inference code (`head.weight`, `embed.weight`, `layers.N.ffn.gate.weight`), Hugging
# Face (`lm_head.weight`, `model.embed_tokens.weight`, `model.layers.N.mlp.gate.weight`).
# `.gate.weight` does not match the experts' `gate_proj` / `w_gate`.
DEFAULT_EXCLUDE = ("head.weight", "embed", ".gate.weight")


@dataclass(frozen=True)
class QuantizeFp8Options:
    """Options of `--quantize-fp8`."""

    weight_block: int = option(
        128,
        "block size B: weights get BxB block scales, activations 1xB (per token)",
        positive=True,
        max=4096,
        power_of_two=True,
    )
    pow2_scale: bool = option(False, "round scales up to powers of two")
    exclude: tuple[str, ...] = option(
        DEFAULT_EXCLUDE,
        "keep matmuls in high precision whose weight key contains one of these substrings",
    )
    experts: bool = option(True, "quantize moe.grouped_matmul (routed experts)")
    mlp: bool = option(True, "decompose moe.mlp into three linears and quantize them")

    def __post_init__(self) -> None:
        if self.weight_block <= 0:
            raise ValueError(f"option 'weight-block' must be positive, got {self.weight_block}")
        if any(not s for s in self.exclude):
            raise ValueError("option 'exclude' takes non-empty substrings")


def run(module: ir.Operation, options: QuantizeFp8Options) -> None:
    """Quantizes the matmuls of `module` (see the module docstring)."""
    if options.mlp:
        for op in _collect(module, "moe.mlp"):
            _decompose_mlp(op)
    cache: _Quantized = {}
    for op in _collect(module, "torch.aten.linear", "moe.grouped_matmul"):
        if op.name == "moe.grouped_matmul" and not options.experts:
            _skip(op, "experts=false")
            continue
        _Rewrite(op, options, cache).apply()


def _collect(module: ir.Operation, *names: str) -> list[ir.Operation]:
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name in names:
            found.append(op.operation)
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    return found


def _skip(op: ir.Operation, reason: str) -> None:
    op.attributes["mlacc.fp8_skip"] = ir.StringAttr.get(reason)


def weight_keys(value: ir.Value) -> list[str] | None:
    """The ``mlacc.weight`` keys `value` is computed from, or None if it depends on anything
    else (a function argument, an op with regions). Sorted, without duplicates."""
    keys: set[str] = set()
    seen: dict[int, ir.Operation] = {}  # holds the ops, so their ids stay unique
    stack = [value]
    while stack:
        v = stack.pop()
        owner = v.owner
        if not isinstance(owner, ir.OpView | ir.Operation):
            return None  # a block argument
        op = owner.operation
        if id(op) in seen:
            continue
        seen[id(op)] = op
        if op.name == "mlacc.weight":
            keys.add(ir.StringAttr(op.attributes["key"]).value)
            continue
        if len(op.regions):
            return None
        stack.extend(op.operands)
    return sorted(keys) if keys else None


# (value, block shape, block) -> (q, scale) of an `fp8.quantize` built earlier in that block:
# a tensor read by several matmuls (x by the gate and up projections) is quantized once.
_Quantized = dict[tuple[ir.Value, tuple[int, ...], ir.Block], tuple[ir.Value, ir.Value]]


class _Rewrite:
    """One ``torch.aten.linear`` or ``moe.grouped_matmul``."""

    def __init__(self, op: ir.Operation, options: QuantizeFp8Options, cache: _Quantized) -> None:
        self.op = op
        self.options = options
        self.cache = cache
        self.grouped = op.name == "moe.grouped_matmul"

    def quantize(self, value: ir.Value, block_shape: list[int]) -> tuple[ir.Value, ir.Value]:
        """`fp8.quantize` of `value` (reused when this block already quantized it)."""
        key = (value, tuple(block_shape), self.op.block)
        if key not in self.cache:
            self.cache[key] = quantize(
                value, block_shape=block_shape, pow2_scale=self.options.pow2_scale
            )
        return self.cache[key]

    def reason_not(self) -> str | None:
        """Why this matmul stays in high precision (None: quantize it)."""
        operands = list(self.op.operands)
        x, w = operands[0], operands[1]
        if not self.grouped and not _is_none(operands[2]):
            return "has a bias"
        xi, wi = tensor_info(x.type), tensor_info(w.type)
        if xi is None or wi is None:
            return "operands are not ranked tensors"
        if xi.dtype not in FLOAT_DTYPES or wi.dtype not in FLOAT_DTYPES:
            return f"operands are {xi.dtype} x {wi.dtype}, not floating point"
        if wi.rank != (3 if self.grouped else 2):
            return f"weight has rank {wi.rank}"
        keys = weight_keys(w)
        if keys is None:
            return "the weight is not computed from mlacc.weight ops only"
        for key in keys:
            for pattern in self.options.exclude:
                if pattern in key:
                    return f"excluded: weight '{key}' matches '{pattern}'"
        self.keys = keys
        return None

    def apply(self) -> None:
        reason = self.reason_not()
        if reason is not None:
            _skip(self.op, reason)
            return
        b = self.options.weight_block
        operands = list(self.op.operands)
        x, w = operands[0], operands[1]
        out_dtype = tb.info(x).dtype
        with ir.InsertionPoint(self.op), self.op.location:
            w_q, w_s = self.quantize(w, [b, b])
            x_q, x_s = self.quantize(x, [b])
            if self.grouped:
                y = fp8_grouped_matmul(
                    x_q, x_s, w_q, w_s, operands[2], block_n=b, block_k=b, out_dtype=out_dtype
                )
            else:
                y = fp8_matmul(x_q, x_s, w_q, w_s, block_n=b, block_k=b, out_dtype=out_dtype)
        if str(y.type) != str(self.op.results[0].type):
            y.owner.operation.erase()
            raise PassError(
                f"{FLAG}: internal error: {y.type} replaces {self.op.results[0].type}", op=self.op
            )
        new = y.owner.operation
        attrs = self.op.attributes
        for i in range(len(attrs)):  # decisions of earlier passes (expert placement, ...)
            if attrs[i].name.startswith("mlacc."):
                new.attributes[attrs[i].name] = attrs[i].attr
        new.attributes["mlacc.fp8"] = ir.StringAttr.get(", ".join(self.keys))
        self.op.results[0].replace_all_uses_with(y)
        none = operands[2] if not self.grouped else None
        self.op.erase()
        if none is not None:
            tb.erase_if_unused(none)


def _decompose_mlp(op: ir.Operation) -> None:
    """``moe.mlp(x, w_gate, w_up, w_down)`` -> three ``aten.linear`` + ``silu`` * ``mul``."""
    x, w_gate, w_up, w_down = list(op.operands)
    with ir.InsertionPoint(op), op.location:
        hidden = tb.mul(tb.silu(tb.linear(x, w_gate)), tb.linear(x, w_up))
        y = tb.linear(hidden, w_down)
    if str(y.type) != str(op.results[0].type):
        raise PassError(f"{FLAG}: cannot decompose moe.mlp: result {y.type}", op=op)
    op.results[0].replace_all_uses_with(y)
    op.erase()


def _is_none(value: ir.Value) -> bool:
    return str(value.type) == "!torch.none"


register_pass(
    FLAG,
    "Quantize matmuls to block-scaled FP8 e4m3 (DeepSeek-V3 recipe: 128x128 weight blocks, "
    "per-token activation blocks, fp32 accumulation)",
    QuantizeFp8Options,
    run,
)
