"""`--moe-group-experts`: per-expert `moe.experts` -> dispatch + grouped matmuls + combine.

Every ``moe.experts`` (the per-expert form capture produces) becomes::

    x_sorted, row_of, offsets = moe.dispatch(x, indices)      # block_size-aligned segments
    h   = moe.grouped_matmul(x_sorted, w13, offsets)          # w13 = cat([w_gate, w_up], 1)
    a   = moe.swiglu(h)                                       # [E, 2I, D] -> [P, I]
    y   = moe.grouped_matmul(a, w_down, offsets)
    out = moe.combine(y, row_of, weights)

The fused gate/up weight ``[E, 2I, D]`` is built by weight-only ``torch.aten.cat`` ops on the
stacked weights (gate rows first, as `moe.swiglu` expects).

Shared experts (``merge_shared``): when ``torch.aten.add.Tensor(experts_out, mlp_out, 1)``
adds a ``moe.mlp`` on the same tokens to the routed output, the shared MLP joins the grouped
form as extra experts that every token routes to with weight 1: its ``[m*I, D]`` weights
(DeepSeek concatenates m shared experts along the intermediate dim) are split into m experts
of the routed intermediate size I and appended to the stacked weights (``aten.cat`` on dim 0),
and indices/weights get m more columns (``aten.new_full`` + ``aten.cat``), so the add becomes
the one combine. SwiGLU is separable along the intermediate dim, so this is exact up to
summation order. It is legal only when the shared intermediate size is a multiple of I, the
MLP reads the very same ``x``, and the add is the only user of both outputs; otherwise the
``moe.mlp`` stays and says why.

Decisions are recorded as discardable attributes (the IRDL ops accept them; backends read only
the declared attributes): on ``moe.combine`` ``mlacc.shared_merged`` (bool) and
``mlacc.shared_reason`` (string), also on a ``moe.mlp`` that was not merged.

Placement (``groups > 1``): DeepSeek's EPLB (see `_moe_placement`) over the routed experts,
from ``histogram`` (per-expert token counts) or uniform load, with up to ``replicate`` extra
replicas of hot experts. The gate/up ``moe.grouped_matmul`` of each layer gets
``mlacc.placement`` (per group, its expert ids), ``mlacc.placement_load`` (per group, expected
load in the histogram's units; uniform = 1 per expert), ``mlacc.placement_replicas`` (per
expert, copies) and, when shared experts were merged, ``mlacc.placement_shared`` (their ids:
every group computes them for its own tokens).

The pass is idempotent: a second run finds no ``moe.experts``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dialects._mlir import ir
from ..dialects.base import python_to_attr
from ..dialects.moe.ops import combine, dispatch, grouped_matmul, swiglu
from ..dialects.types import TensorInfo, tensor_info
from . import _torch_builders as tb
from ._moe_placement import Placement, PlacementError, place_experts
from .registry import PassError, option, register_pass

FLAG = "moe-group-experts"


@dataclass(frozen=True)
class MoeGroupExpertsOptions:
    """Options of `--moe-group-experts`."""

    block_size: int = option(
        16,
        "rows per block: each expert's dispatched segment is padded to a multiple of it",
        positive=True,
        max=4096,
    )
    merge_shared: bool = option(
        True,
        "merge shared experts (moe.mlp added to the routed "
        "output) into the grouped form where legal",
    )
    groups: int = option(
        1,
        "compute groups (cores, chips) to place experts on; 1 = no placement",
        positive=True,
        max=65536,
    )
    histogram: tuple[float, ...] = option(
        (),
        "per-expert token counts from a calibration run (comma-separated); empty = uniform load",
        min=0,
    )
    replicate: int = option(
        0, "at most this many extra replicas of hot experts when placing", min=0, max=65536
    )

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ValueError(f"option 'block-size' must be positive, got {self.block_size}")
        if self.groups <= 0:
            raise ValueError(f"option 'groups' must be positive, got {self.groups}")
        if self.replicate < 0:
            raise ValueError(f"option 'replicate' must be >= 0, got {self.replicate}")
        if any(v < 0 for v in self.histogram):
            raise ValueError("option 'histogram' takes token counts >= 0")


def run(module: ir.Operation, options: MoeGroupExpertsOptions) -> None:
    """Rewrites every `moe.experts` in `module` (see the module docstring)."""
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "moe.experts":
            found.append(op.operation)
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    for op in found:
        _Rewrite(op, options).apply()


# --- one moe.experts ---


@dataclass
class _Shared:
    """A shared-expert candidate: the `moe.mlp` and the add joining it to the routed output."""

    mlp: ir.Operation
    add: ir.Operation
    merge: bool
    reason: str
    copies: int = 0  # experts of the routed intermediate size it splits into


class _Rewrite:
    def __init__(self, op: ir.Operation, options: MoeGroupExpertsOptions) -> None:
        self.op = op
        self.options = options
        (self.x, self.weights, self.indices, self.w_gate, self.w_up, self.w_down) = list(
            op.operands
        )
        for value, name in ((self.x, "x"), (self.w_gate, "w_gate"), (self.indices, "indices")):
            if not str(value.type).startswith("!torch.vtensor"):
                raise PassError(
                    f"{FLAG}: expects !torch.vtensor operands (it builds torch-dialect ops for "
                    f"the fused weights); '{name}' has type {value.type}",
                    op=op,
                )
        self.gate = _info(self.w_gate, "w_gate", op)
        self.up = _info(self.w_up, "w_up", op)
        self.down = _info(self.w_down, "w_down", op)
        self.num_experts, self.inter, self.dim = self.gate.shape
        if self.num_experts is None or self.inter is None:
            raise PassError(
                f"{FLAG}: the number of experts and their intermediate size must be static, "
                f"got w_gate {self.gate}",
                op=op,
            )

    # -- analysis --

    def shared(self) -> _Shared | None:
        """The shared-expert candidate added to the routed output, and whether it can merge."""
        out = self.op.results[0]
        for use in out.uses:
            add = use.owner.operation
            if add.name != "torch.aten.add.Tensor" or len(add.operands) != 3:
                continue
            other = add.operands[1 - use.operand_number] if use.operand_number < 2 else None
            if other is None or not isinstance(other.owner, ir.OpView | ir.Operation):
                continue
            mlp = other.owner.operation
            if mlp.name != "moe.mlp":
                continue
            merge, reason, copies = self._merge_legal(mlp, add)
            return _Shared(mlp, add, merge, reason, copies)
        return None

    def _merge_legal(self, mlp: ir.Operation, add: ir.Operation) -> tuple[bool, str, int]:
        def no(reason: str) -> tuple[bool, str, int]:
            return False, reason, 0

        if not self.options.merge_shared:
            return no("merge-shared=false")
        x, s_gate, s_up, s_down = list(mlp.operands)
        if x != self.x:
            return no("the shared expert reads other tokens than the routed experts")
        if not _is_one(add.operands[2]):
            return no("the add's alpha is not the constant 1")
        if len(list(self.op.results[0].uses)) != 1 or len(list(mlp.results[0].uses)) != 1:
            return no("the routed or shared output has users besides the add")
        if str(add.results[0].type) != str(self.op.results[0].type):
            return no(f"the add's result type {add.results[0].type} differs from the routed one")
        gate, up, down = (tensor_info(v.type) for v in (s_gate, s_up, s_down))
        if gate is None or up is None or down is None:
            return no("the shared expert's weights are not ranked tensors")
        if (gate.dtype, up.dtype, down.dtype) != (self.gate.dtype, self.up.dtype, self.down.dtype):
            return no(
                f"the shared weights' element types ({gate.dtype}) differ from the routed "
                f"experts' ({self.gate.dtype})"
            )
        width = gate.shape[0]
        if width is None or None in down.shape:
            return no("the shared expert's intermediate size is dynamic")
        if width % self.inter:
            return no(
                f"shared intermediate size {width} is not a multiple of the routed experts' "
                f"{self.inter}"
            )
        copies = width // self.inter
        ids = ", ".join(str(self.num_experts + i) for i in range(copies))
        return (
            True,
            f"shared intermediate size {width} = {copies} x {self.inter}: runs as expert(s) "
            f"{ids} with weight 1 for every token",
            copies,
        )

    def placement(self) -> Placement | None:
        opts = self.options
        if opts.groups == 1:
            return None
        try:
            return place_experts(
                self.num_experts, opts.groups, opts.histogram or None, opts.replicate
            )
        except PlacementError as err:
            raise PassError(f"{FLAG}: cannot place experts: {err}", op=self.op) from None

    # -- rewriting --

    def apply(self) -> None:
        shared = self.shared()
        placement = self.placement()  # validates before anything changes
        merged = shared is not None and shared.merge
        anchor = shared.add if merged else self.op
        loc = self.op.location
        with ir.InsertionPoint(anchor), loc:
            w_gate, w_up, w_down = self.w_gate, self.w_up, self.w_down
            weights, indices = self.weights, self.indices
            experts = self.num_experts
            if merged:
                assert shared is not None
                m = shared.copies
                s_gate, s_up, s_down = list(shared.mlp.operands)[1:]
                w_gate = tb.cat([w_gate, self._split_rows(s_gate, m)], 0)
                w_up = tb.cat([w_up, self._split_rows(s_up, m)], 0)
                w_down = tb.cat([w_down, self._split_cols(s_down, m)], 0)
                columns = [tb.new_full(indices, experts + i) for i in range(m)]
                indices = tb.cat([indices, *columns], 1)
                weights = tb.cat([weights, tb.new_full(weights, 1.0, m)], 1)
                experts += m
            w13 = tb.cat([w_gate, w_up], 1)
            x_sorted, row_of, offsets = dispatch(
                self.x, indices, num_experts=experts, block_size=self.options.block_size
            )
            h = grouped_matmul(x_sorted, w13, offsets)
            y = grouped_matmul(swiglu(h), w_down, offsets)
            out = combine(y, row_of, weights)
            gate_up_mm = h.owner.operation
            combine_op = out.owner.operation
            if placement is not None:
                _attach_placement(gate_up_mm, placement, range(self.num_experts, experts))
            if shared is None:
                reason = "no moe.mlp on the same tokens is added to the routed output"
            else:
                reason = shared.reason
            merged_attr = ir.BoolAttr.get(merged)
            reason_attr = ir.StringAttr.get(reason)
            combine_op.attributes["mlacc.shared_merged"] = merged_attr
            combine_op.attributes["mlacc.shared_reason"] = reason_attr
        if merged:
            assert shared is not None
            add, alpha = shared.add, shared.add.operands[2]
            add.results[0].replace_all_uses_with(out)
            add.erase()
            shared.mlp.erase()
            self.op.erase()
            tb.erase_if_unused(alpha)
        else:
            if shared is not None:
                shared.mlp.attributes["mlacc.shared_merged"] = merged_attr
                shared.mlp.attributes["mlacc.shared_reason"] = reason_attr
            self.op.results[0].replace_all_uses_with(out)
            self.op.erase()

    def _split_rows(self, w: ir.Value, m: int) -> ir.Value:
        """``[m*I, D]`` -> ``[m, I, D]`` (shared experts m stacked like the routed ones)."""
        info = tensor_info(w.type)
        return tb.view(w, (m, self.inter, info.shape[1]))

    def _split_cols(self, w: ir.Value, m: int) -> ir.Value:
        """``[D, m*I]`` -> ``[m, D, I]``."""
        info = tensor_info(w.type)
        d = info.shape[0]
        if m == 1:
            return tb.view(w, (1, d, self.inter))
        return tb.permute(tb.view(w, (d, m, self.inter)), (1, 0, 2))


# --- helpers building torch-dialect ops at the current insertion point ---


def _info(value: ir.Value, name: str, op: ir.Operation) -> TensorInfo:
    info = tensor_info(value.type)
    if info is None:
        raise PassError(f"{FLAG}: '{name}' must be a ranked tensor, got {value.type}", op=op)
    return info


def _is_one(value: ir.Value) -> bool:
    owner = value.owner
    if not isinstance(owner, ir.OpView | ir.Operation):
        return False
    op = owner.operation
    if op.name not in ("torch.constant.int", "torch.constant.float"):
        return False
    attr = op.attributes["value"]
    number = ir.IntegerAttr(attr).value if op.name.endswith("int") else ir.FloatAttr(attr).value
    return number == 1


def _attach_placement(op: ir.Operation, placement: Placement, shared_ids: range) -> None:
    op.attributes["mlacc.placement"] = ir.ArrayAttr.get(
        [ir.ArrayAttr.get([python_to_attr(e) for e in group]) for group in placement.groups]
    )
    op.attributes["mlacc.placement_load"] = ir.ArrayAttr.get(
        [ir.FloatAttr.get(ir.F64Type.get(), float(load)) for load in placement.loads]
    )
    op.attributes["mlacc.placement_replicas"] = ir.ArrayAttr.get(
        [python_to_attr(r) for r in placement.replicas]
    )
    if len(shared_ids):
        op.attributes["mlacc.placement_shared"] = ir.ArrayAttr.get(
            [python_to_attr(e) for e in shared_ids]
        )


register_pass(
    FLAG,
    "Rewrite per-expert moe.experts into dispatch + grouped matmuls + combine; merge shared "
    "experts; place experts on compute groups (EPLB)",
    MoeGroupExpertsOptions,
    run,
)
