"""mlacc's dialects (`mlacc`, `mla`, `moe`, `fp8`), defined in Python on the MLIR bindings.

`make_context()` is the one way to get a context where they, torch-mlir's `torch` dialect and
the upstream dialects are all usable. Nothing in this package imports torch.
"""

from __future__ import annotations

import sys

from ._mlir import ext, ir, torch_dialect
from .base import GraphOp, VerificationError
from .core import Core
from .fp8 import FP8
from .mla import MLA
from .moe import MoE
from .types import TensorInfo, tensor_info, vtensor_type

DIALECTS: tuple[type[ext.Dialect], ...] = (Core, MLA, MoE, FP8)

# Targets add their own dialects (e.g. the `sim` target's `accel`) under this entry-point
# group: name -> an `ext.Dialect` subclass.
ENTRY_POINT_GROUP = "mlacc.dialects"
_plugins: list[type[ext.Dialect]] | None = None
BROKEN_PLUGINS: dict[str, str] = {}  # entry point -> why it failed to load


def plugin_dialects() -> list[type[ext.Dialect]]:
    """The dialects installed targets register (loaded once; broken ones are skipped)."""
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points

        _plugins = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                _plugins.append(ep.load())
            except Exception as err:  # noqa: BLE001 - a broken plug-in must not stop mlacc
                BROKEN_PLUGINS[ep.value] = f"{type(err).__name__}: {err}"
    return _plugins


def load_dialects(ctx: ir.Context) -> None:
    """Registers torch-mlir's dialect and loads ours and the targets' into `ctx` (idempotent)."""
    torch_dialect.register_dialect(ctx)
    with ctx:
        for dialect in (*DIALECTS, *plugin_dialects()):
            _make_importable(dialect)
            if not ctx.is_dialect_loaded(dialect.DIALECT_NAMESPACE):
                dialect.load()


def _make_importable(dialect: type[ext.Dialect]) -> None:
    """Makes `<bindings>.dialects.<namespace>` name the module defining `dialect`.

    The bindings look that module up each time they wrap one of the dialect's ops and do not
    remember a failed lookup: without it, every op wrapped costs a search of `sys.path`
    (about half of a full-size DeepSeek-V3 compile's pass and lowering time).
    """
    name = f"{ext.__name__.rpartition('.')[0]}.{dialect.DIALECT_NAMESPACE}"
    sys.modules.setdefault(name, sys.modules[dialect.__module__])


def make_context() -> ir.Context:
    """A fresh context with every dialect mlacc uses loaded."""
    ctx = ir.Context()
    load_dialects(ctx)
    return ctx


def all_ops() -> list[type[GraphOp]]:
    """Every op class of every mlacc dialect, in dialect then definition order."""
    return [op for dialect in DIALECTS for op in dialect.operations]


__all__ = [
    "DIALECTS",
    "FP8",
    "MLA",
    "Core",
    "GraphOp",
    "MoE",
    "TensorInfo",
    "VerificationError",
    "all_ops",
    "load_dialects",
    "make_context",
    "tensor_info",
    "vtensor_type",
]
