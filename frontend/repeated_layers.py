"""Trace each distinct decoder layer once and stamp out its repeats in the imported IR.

DeepSeek models are runs of identical decoder layers (V3: 3 dense, then 58 MoE): the same ops
with the same shapes and attributes, only the weights differ. torch.export's cost grows with
the ops it traces, so capture traces the first layer of every run, with a marker
(`custom_ops.mark_layer_input`) on the input of each traced layer and on the final hidden
states, and then clones each traced layer's ops into the layers it stands for, renaming
their weight keys and rewiring their KV cache argument and result. The module is the one a
full trace gives, op for op (`test_repeated_layers.py` compares the two).

A layer joins a run only when its `CaptureModule.structure()` equals the run's first layer's:
module types, source lines, op attributes and weight shapes/dtypes, everything its trace
depends on but the weights' names.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..dialects._mlir import func, ir
from .capture_modules import CaptureModule
from .custom_ops import LAYER_INPUT_OP
from .errors import CaptureError


@dataclass
class LayerRuns:
    """Runs of identical layers: `runs[i]` lists the layers traced layer `i` stands for (`i`
    first); `keys[j]` maps the weight keys of layer `j`'s traced layer to layer `j`'s own."""

    count: int
    runs: dict[int, list[int]] = field(default_factory=dict)
    keys: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def traced(self) -> list[int]:
        """The layers capture traces, in order."""
        return sorted(self.runs)

    @property
    def repeats(self) -> bool:
        """Whether any layer is stamped rather than traced."""
        return len(self.runs) < self.count


def plan_layer_runs(blocks: Sequence[CaptureModule]) -> LayerRuns:
    """Groups consecutive layers with equal structure whose weight keys pair up one to one."""
    plan = LayerRuns(count=len(blocks))
    first: int | None = None
    for i, block in enumerate(blocks):
        keys = None
        if first is not None and _same_structure(blocks[first], block):
            keys = _key_map(blocks[first], block)
        if keys is None:
            first = i
            plan.runs[i] = [i]
        else:
            plan.runs[first].append(i)
            plan.keys[i] = keys
    return plan


def _same_structure(a: CaptureModule, b: CaptureModule) -> bool:
    sa = a.structure()
    return sa is not None and sa == b.structure()


def _key_map(traced: CaptureModule, repeat: CaptureModule) -> dict[str, str] | None:
    """Traced key -> repeat key, pairing the weights held at the same place; None when two
    weights share a key in one layer but not in the other."""
    out: dict[str, str] = {}
    back: dict[str, str] = {}
    for ma, mb in zip(traced.modules(), repeat.modules()):
        if not isinstance(ma, CaptureModule) or not isinstance(mb, CaptureModule):
            continue
        for name, key in ma.weight_keys().items():
            other = mb.weight_keys()[name]
            if out.setdefault(key, other) != other or back.setdefault(other, key) != key:
                return None
    return out


def stamp_repeated_layers(fn: ir.Operation, plan: LayerRuns, cache_args: int | None) -> None:
    """Expands the traced layers of function `fn` (traced with `mark_layer_input` markers)
    into all `plan.count` layers and removes the markers.

    `cache_args`: the index of layer 0's KV cache argument (layer `i`'s is `cache_args + i`);
    the function returns the layers' updated caches last, in layer order. None: no caches.
    """
    body = fn.regions[0].blocks[0]
    ops = [op.operation for op in body.operations]  # OpViews may shadow `name`
    markers = [(i, op) for i, op in enumerate(ops) if _is_marker(op)]
    layers = [_marker_layer(op) for _, op in markers]
    if layers != [*plan.traced, plan.count]:
        raise CaptureError(
            f"repeated-layer capture: markers of layers {layers} in '{_name(fn)}', "
            f"expected {[*plan.traced, plan.count]}"
        )
    caches: dict[int, list[ir.Value]] = {}  # layer -> the values it returns (its new cache)
    for (start, begin), (end, finish) in itertools.pairwise(markers):
        layer = _marker_layer(begin)
        segment = ops[start + 1 : end]
        h_in, h_out = begin.results[0], finish.operands[0]
        escaping = _escaping(segment, h_out)
        caches[layer] = escaping
        h = h_out
        for repeat in plan.runs[layer][1:]:
            mapping: dict[ir.Value, ir.Value] = {h_in: h}
            if cache_args is not None:
                args = body.arguments
                mapping[args[cache_args + layer]] = args[cache_args + repeat]
            _clone_segment(segment, mapping, plan.keys[repeat], ir.InsertionPoint(finish))
            h = mapping[h_out]
            caches[repeat] = [mapping[v] for v in escaping]
        finish.replace_uses_of_with(h_out, h)
    if cache_args is not None:
        _return_all_caches(fn, body, [v for layer in sorted(caches) for v in caches[layer]])
    for _, marker in markers:
        _remove_marker(marker)


def _is_marker(op: ir.Operation) -> bool:
    return (
        op.name == "torch.operator" and ir.StringAttr(op.attributes["name"]).value == LAYER_INPUT_OP
    )


def _marker_layer(op: ir.Operation) -> int:
    return ir.IntegerAttr(op.operands[1].owner.attributes["value"]).value


def _name(fn: ir.Operation) -> str:
    return ir.StringAttr(fn.attributes["sym_name"]).value


def _escaping(segment: list[ir.Operation], h_out: ir.Value) -> list[ir.Value]:
    """Values of the segment that the function returns (the layer's new cache).

    Other ops after the segment may read only its output `h_out` and its constants (the
    importer shares a constant between layers)."""
    inside = {op for op in segment}
    out = []
    for op in segment:
        for value in op.results:
            if value == h_out:
                continue
            users = [use.owner.operation for use in value.uses]
            if any(user.name == "func.return" for user in users):
                out.append(value)
            elif not op.name.startswith("torch.constant.") and any(
                user not in inside for user in users
            ):
                raise CaptureError(
                    f"repeated-layer capture: {op.name} of a layer is read after the layer"
                )
    return out


def _clone_segment(
    segment: list[ir.Operation],
    mapping: dict[ir.Value, ir.Value],
    keys: dict[str, str],
    ip: ir.InsertionPoint,
) -> None:
    """Clones `segment` at `ip`, reading `mapping[v]` for every operand `v` it maps and
    renaming weight keys by `keys`; adds each original result -> its clone to `mapping`."""
    for op in segment:
        clone = op.clone(ip=ip).operation
        for operand in set(op.operands):
            if operand in mapping:
                clone.replace_uses_of_with(operand, mapping[operand])
        if op.name == "mlacc.weight":
            key = ir.StringAttr(op.attributes["key"]).value
            if key not in keys:
                raise CaptureError(f"repeated-layer capture: weight '{key}' has no repeat")
            clone.attributes["key"] = ir.StringAttr.get(keys[key])
        for old, new in zip(op.results, clone.results):
            mapping[old] = new


def _return_all_caches(fn: ir.Operation, body: ir.Block, caches: list[ir.Value]) -> None:
    """Makes `fn` return its non-cache results, then `caches`; updates its type."""
    ret = list(body.operations)[-1].operation
    kept = [v for v in ret.operands if v not in set(caches)]
    results = [*kept, *caches]
    with ret.location:
        func.ReturnOp(results, ip=ir.InsertionPoint(ret))
    ret.erase()
    inputs = [arg.type for arg in body.arguments]
    fn.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get(inputs, [v.type for v in results])
    )


def _remove_marker(marker: ir.Operation) -> None:
    layer_constant = marker.operands[1].owner.operation
    marker.results[0].replace_all_uses_with(marker.operands[0])
    marker.erase()
    if not list(layer_constant.results[0].uses):
        layer_constant.erase()
