"""The plan: what a compiled entry point executes, as plain data (JSON in the artifact).

A plan is the contract between the compile side and the run side: the compiler lowers MLIR
into it once, and executors run it without any MLIR. A `Function` is a list of `Step`s in
SSA form; every value has an integer id. An argument of a step is a value reference, a
literal (int, float, bool, str, None) or a list of arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PLAN_VERSION = 1

Arg = dict[str, Any]  # {"ref": id} | {"lit": value} | {"list": [Arg, ...]}


def ref(value_id: int) -> Arg:
    """An argument that reads value `value_id`."""
    return {"ref": value_id}


def lit(value: Any) -> Arg:
    """A literal argument."""
    return {"lit": value}


def lst(items: list[Arg]) -> Arg:
    """A list argument."""
    return {"list": items}


@dataclass
class TensorSpec:
    """Shape (None: dynamic) and torch dtype name of a tensor."""

    shape: list[int | None]
    dtype: str

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass
class Step:
    """One op: `op` is the op name ("mla.rms_norm", "torch.aten.mm", ...)."""

    op: str
    args: list[Arg]
    results: list[int | None]
    attrs: dict[str, Any] = field(default_factory=dict)
    loc: str = ""
    # Target-specific cost data (the `sim` target's kernel schedule); None: not costed.
    cost: dict[str, Any] | None = None
    # The op updates a donated buffer (an entry point's KV cache): run its in-place form.
    in_place: bool = False


@dataclass
class Function:
    """An entry point: inputs (value ids + specs), steps, outputs (args + specs).

    `donated` maps an input index to the output index that returns the same buffer, updated
    in place (the latent KV caches; docs/execution-contract.md)."""

    name: str
    inputs: list[int]
    input_specs: list[TensorSpec]
    steps: list[Step]
    outputs: list[Arg]
    output_specs: list[TensorSpec | None]
    donated: dict[int, int] = field(default_factory=dict)


@dataclass
class Plan:
    """All entry points of a compiled module."""

    functions: dict[str, Function]
    version: int = PLAN_VERSION

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data. Shares the steps' argument and attribute objects with
        the plan (serialize it, do not mutate it): a full-size model has ~10^4 steps."""
        return {
            "functions": {name: _function_json(f) for name, f in self.functions.items()},
            "version": self.version,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Plan:
        """Rebuilds a plan from `to_json` output; raises KeyError/TypeError on malformed data."""
        functions = {}
        for name, f in data["functions"].items():
            functions[name] = Function(
                name=f["name"],
                inputs=[int(i) for i in f["inputs"]],
                input_specs=[TensorSpec(**s) for s in f["input_specs"]],
                steps=[Step(**s) for s in f["steps"]],
                outputs=list(f["outputs"]),
                output_specs=[None if s is None else TensorSpec(**s) for s in f["output_specs"]],
                donated={int(k): int(v) for k, v in f.get("donated", {}).items()},
            )
        return Plan(functions=functions, version=int(data["version"]))


def _function_json(f: Function) -> dict[str, Any]:
    return {
        "name": f.name,
        "inputs": f.inputs,
        "input_specs": [vars(s) for s in f.input_specs],
        "steps": [vars(s) for s in f.steps],
        "outputs": f.outputs,
        "output_specs": [None if s is None else vars(s) for s in f.output_specs],
        "donated": f.donated,
    }
