"""`--mla-fuse-rope`: the rotary embedding moves into the ops that load or store q_pe / k_pe.

Every `mla.rotary_embedding` whose users can all absorb it is removed; its consumer takes the
cos/sin tables of an `mla.rope_tables` (built once per function and rope configuration, at the
function entry: constants of the module) and rotates as it loads or stores:

- ``q_pe`` of `mla.latent_attention` (absorbed form): the attention rotates q_pe by its
  positions' table rows;
- ``k_pe`` concatenated (``torch.aten.cat`` of ``[c_kv, k_pe]``) into the entries of
  `mla.cache_update`: the cache write rotates the entries' last ``dr`` channels;
- ``q_pe`` and ``k_pe`` of `mla.decoupled_attention` (un-absorbed form): both must be
  rotations (same rope, by q_positions / k_positions) so the op rotates both.

The tables have ``max_positions`` = the cache length: a cache bounds the positions it is
written at. Attention without a cache (the `forward` entry point) is fused only when the
``max-positions`` option bounds its positions; the longest length wins when several
consumers share the tables. A rotation
whose users cannot all absorb it stays, with the reason in ``mlacc.fuse_rope`` on it.
Idempotent: fused ops take no second tables and no rotation is left to fuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dialects import mla
from ..dialects._mlir import ir
from ..dialects.base import attr_to_python
from ..dialects.types import tensor_info
from .registry import PassError, option, register_pass

_REASON = "mlacc.fuse_rope"


@dataclass(frozen=True)
class MlaFuseRopeOptions:
    """Options of `--mla-fuse-rope`."""

    max_positions: int = option(
        0,
        "table length for attention without a KV cache, whose positions nothing else bounds "
        "(0: leave those rotations unfused)",
        min=0,
        max=1 << 20,
    )


def run(module: ir.Operation, options: MlaFuseRopeOptions) -> None:
    """Fuses the rotary embeddings of every function in `module`."""
    funcs: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "func.func":
            funcs.append(op)
        return ir.WalkResult.ADVANCE

    module.walk(collect, ir.WalkOrder.PRE_ORDER)
    if options.max_positions < 0:
        raise PassError(f"max-positions must be >= 0, got {options.max_positions}")
    for fn in funcs:
        _fuse_function(fn, options.max_positions)


def _ops_named(fn: ir.Operation, name: str) -> list[ir.OpView]:
    found: list[ir.OpView] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == name:
            found.append(op.opview)
        return ir.WalkResult.ADVANCE

    fn.walk(visit)
    return found


def _uses(value: ir.Value) -> list[tuple[ir.OpView, int]]:
    return [
        (use.owner.opview if hasattr(use.owner, "opview") else use.owner, use.operand_number)
        for use in value.uses
    ]


def _same(a: ir.Value, b: ir.Value) -> bool:
    return a == b


class _Plan:
    """What to rewrite for one rotation: (op, role) pairs; role in q_latent/q_dec/k_dec/cache."""

    def __init__(self) -> None:
        self.targets: list[tuple[ir.OpView, str, ir.OpView | None]] = []
        self.lengths: list[int] = []


def _analyze(rot: ir.OpView, max_positions: int) -> tuple[_Plan | None, str]:
    plan = _Plan()
    rope = attr_to_python(rot.rope)
    uses = _uses(rot.out)
    if not uses:
        return None, "the rotation has no users"
    for user, index in uses:
        name = user.operation.name
        if name == "mla.latent_attention" and index == 1:
            if user.rope_cos is not None:
                return None, "the attention already takes rope tables"
            if not _same(user.positions, rot.positions):
                return None, "the attention's positions differ from the rotation's"
            plan.targets.append((user, "q_latent", None))
            plan.lengths.append(_cache_slots(user.kv_cache, user.block_table))
        elif name == "mla.decoupled_attention" and index in (1, 3):
            if user.rope_cos is not None:
                return None, "the attention already takes rope tables"
            other = user.k_pe if index == 1 else user.q_pe
            owner = other.owner
            other_op = owner.opview if isinstance(owner, (ir.Operation, ir.OpView)) else None
            if (
                other_op is None
                or other_op.operation.name != "mla.rotary_embedding"
                or attr_to_python(other_op.rope) != rope
            ):
                return None, (
                    "decoupled_attention rotates q_pe and k_pe together, but its other "
                    "rotary operand is not a rotation with the same rope (e.g. keys from a cache)"
                )
            want = user.q_positions if index == 1 else user.k_positions
            if not _same(want, rot.positions):
                return None, "the attention's positions differ from the rotation's"
            if max_positions <= 0:
                return None, (
                    "no KV cache bounds the positions of this attention; pass "
                    "max-positions=N to fuse it with N-entry tables"
                )
            plan.targets.append((user, "q_dec" if index == 1 else "k_dec", None))
            plan.lengths.append(max_positions)
        elif name == "torch.prim.ListConstruct":
            items = list(user.operation.operands)
            if index != len(items) - 1:
                return None, "k_pe is not the last part of the concatenated cache entries"
            list_uses = _uses(user.operation.results[0])
            if len(list_uses) != 1 or list_uses[0][0].operation.name != "torch.aten.cat":
                return None, "the concatenation list has other users"
            cat = list_uses[0][0]
            cat_uses = _uses(cat.operation.results[0])
            rank = tensor_info(cat.operation.results[0].type).rank
            dim_op = cat.operation.operands[1].owner
            if dim_op.name != "torch.constant.int" or (
                attr_to_python(dim_op.attributes["value"]) % rank != rank - 1
            ):
                return None, "the concatenation is not along the last dim"
            if not cat_uses or any(
                u.operation.name != "mla.cache_update" or i != 1 or u.rope_cos is not None
                for u, i in cat_uses
            ):
                return None, "the concatenated entries have users other than mla.cache_update"
            for u, _ in cat_uses:
                if not _same(u.positions, rot.positions):
                    return None, "the cache update's positions differ from the rotation's"
                plan.targets.append((u, "cache", user))
                plan.lengths.append(_cache_slots(u.cache, u.block_table))
        else:
            return None, f"used by {name} (operand {index}), which cannot rotate as it loads"
    if any(n is None for n in plan.lengths):
        return None, "dynamic cache/key length: no static table size"
    return plan, ""


def _cache_slots(cache: ir.Value, block_table: ir.Value | None) -> int | None:
    """Slots per sequence of a contiguous or paged cache (None: dynamic)."""
    pool = tensor_info(cache.type).shape
    if block_table is None:
        return pool[1]
    blocks = tensor_info(block_table.type).shape[1]
    return None if blocks is None or pool[1] is None else blocks * pool[1]


def _fuse_function(fn: ir.Operation, max_positions: int) -> None:
    rotations = _ops_named(fn, "mla.rotary_embedding")
    if not rotations:
        return
    body = fn.regions[0].blocks[0]
    plans: list[tuple[ir.OpView, _Plan]] = []
    for rot in rotations:
        plan, reason = _analyze(rot, max_positions)
        if plan is None:
            rot.operation.attributes[_REASON] = ir.StringAttr.get(f"not fused: {reason}")
        else:
            plans.append((rot, plan))
    if not plans:
        return
    # One table pair per (rope, dim), sized for every consumer in the function.
    sizes: dict[tuple[str, int], tuple[dict, int]] = {}
    for rot, plan in plans:
        rope = attr_to_python(rot.rope)
        dim = tensor_info(rot.out.type).shape[-1]
        key = (str(rot.rope), dim)
        prev = sizes.get(key, (rope, 0))[1]
        sizes[key] = (rope, max(prev, *plan.lengths))
    tables: dict[tuple[str, int], tuple[ir.Value, ir.Value]] = {}
    kind = rotations[0].out.type
    for key, (rope, length) in sizes.items():
        with ir.InsertionPoint.at_block_begin(body), fn.location:
            tables[key] = mla.rope_tables(rope=rope, dim=key[1], max_positions=length, kind=kind)
    work: list[tuple[ir.OpView, ir.Value, ir.Value, str]] = []
    for rot, plan in plans:
        key = (str(rot.rope), tensor_info(rot.out.type).shape[-1])
        cos, sin = tables[key]
        layout = attr_to_python(rot.rope)["layout"]
        for user, role, list_op in plan.targets:
            if role == "cache":
                for i, v in enumerate(list_op.operation.operands):
                    if v == rot.out:
                        list_op.operation.operands[i] = rot.x
            if not any(w[0].operation == user.operation for w in work):
                work.append((user, cos, sin, layout))
    for user, cos, sin, layout in work:
        _attach(user, cos, sin, layout)
    for rot, _ in plans:
        rot.out.replace_all_uses_with(rot.x)
        rot.operation.erase()


def _attach(user: ir.OpView, cos: ir.Value, sin: ir.Value, layout: str) -> None:
    """Replaces `user` by the same op taking the tables (operands are fixed by segment sizes)."""
    name = user.operation.name
    a = user.attribute_values()
    a.pop("rope_layout", None)
    tabs = {"rope_cos": cos, "rope_sin": sin, "rope_layout": layout}
    with ir.InsertionPoint(user), user.location:
        if name == "mla.latent_attention":
            new = mla.latent_attention(
                user.q_latent,
                user.q_pe,
                user.kv_cache,
                user.positions,
                block_table=user.block_table,
                **a,
                **tabs,
            )
        elif name == "mla.decoupled_attention":
            new = mla.decoupled_attention(
                user.q_nope,
                user.q_pe,
                user.k_nope,
                user.k_pe,
                user.v,
                user.q_positions,
                user.k_positions,
                **a,
                **tabs,
            )
        elif name == "mla.cache_update":
            new = mla.cache_update(
                user.cache, user.entries, user.positions, block_table=user.block_table, **tabs
            )
        else:  # pragma: no cover - _analyze only plans the ops above
            raise PassError(f"mla-fuse-rope cannot rewrite {name}", op=user)
    old_attrs = user.operation.attributes
    for named in (old_attrs[i] for i in range(len(old_attrs))):
        if named.name not in new.owner.attributes:
            new.owner.attributes[named.name] = named.attr
    user.results[0].replace_all_uses_with(new)
    user.operation.erase()


register_pass(
    "mla-fuse-rope",
    "Fuse MLA's rotary embeddings into attention Q/K loads and the cache write (table constants)",
    MlaFuseRopeOptions,
    run,
)
