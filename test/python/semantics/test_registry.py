"""The registry covers every dialect op, and each function follows the calling convention."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from mlacc.runtime import semantics

P = inspect.Parameter


def _dialect_ops() -> dict[str, type]:
    from mlacc.dialects import all_ops

    return {op.OPERATION_NAME: op for op in all_ops()}


def test_every_dialect_op_has_semantics_except_weight() -> None:
    ops = _dialect_ops()
    assert set(semantics.NO_SEMANTICS) == {"mlacc.weight"}
    assert set(semantics.names()) == set(ops) - set(semantics.NO_SEMANTICS)
    assert set(semantics.SEMANTICS) == set(semantics.names())


@pytest.mark.parametrize("name", sorted(set(_dialect_ops()) - {"mlacc.weight"}))
def test_signature_follows_the_op_fields(name: str) -> None:
    """Operands positional in field order (optional ones default to None), attributes
    keyword-only with the field names."""
    op = _dialect_ops()[name]
    params = list(inspect.signature(semantics.get(name)).parameters.values())
    positional = [p for p in params if p.kind is P.POSITIONAL_OR_KEYWORD]
    keyword = [p for p in params if p.kind is P.KEYWORD_ONLY]
    assert len(positional) + len(keyword) == len(params)
    operands = op.operand_fields()
    assert [p.name for p in positional] == [f.name for f in operands]
    for p, f in zip(positional, operands):
        optional = f.variadicity.name == "optional"
        assert (p.default is None) == optional, f"{name}: operand {f.name}"
        if not optional:
            assert p.default is P.empty
    assert [p.name for p in keyword] == [f.name for f in op.attribute_fields()]
    assert all(p.default is P.empty for p in keyword)


def test_every_public_function_has_a_docstring() -> None:
    for fn in semantics.SEMANTICS.values():
        assert fn.__doc__ and fn.__doc__.strip(), fn.__name__


def test_unknown_op_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match=r"mla\.no_such_op"):
        semantics.get("mla.no_such_op")
    with pytest.raises(KeyError, match="no reference semantics"):
        semantics.get("mlacc.weight")


def test_double_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        semantics.semantics("mla.rms_norm")(lambda x: x)


def test_semantics_import_no_mlir() -> None:
    code = (
        "import sys, mlacc.runtime.semantics as s; s.names();"
        "bad = [m for m in sys.modules if m.startswith(('torch_mlir', 'mlir', 'mlacc.dialects'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
