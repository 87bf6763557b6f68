"""`mlacc-opt`'s bad-input paths, and the pass registry / pipeline API it is built on."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Literal

import pytest

from mlacc.dialects import make_context
from mlacc.dialects._mlir import ir
from mlacc.dialects.parsing import SourceError, parse_module
from mlacc.passes import registry
from mlacc.passes.pipeline import (
    PipelineError,
    PipelineParseError,
    format_pipeline,
    parse_pipeline,
    run_pipeline,
)
from mlacc.passes.registry import PassError, option, register_pass
from mlacc.tools import mlacc_opt

NORM = """\
// a comment on line 1
func.func @norm(%x: tensor<2x8xf32>, %w: tensor<8xf32>) -> tensor<2x8xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}
func.func private @unused() {
  return
}
"""


BIN = Path(sys.executable).parent


def run_tool(tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs a console script of this environment."""
    return subprocess.run(
        [str(BIN / tool), *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=300
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, tool: str, *needles: str) -> None:
    """Exit status 1, exactly one `error:` line containing `needles`, no traceback."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"{tool}: error:") or ": error: " in errors[0], errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def norm_file(tmp_path: Path) -> Path:
    path = tmp_path / "norm.mlir"
    path.write_text(NORM)
    return path


# --- the tool stays light ---


def test_mlacc_opt_never_imports_torch(norm_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mlir"
    code = f"""
import sys
from mlacc.tools import mlacc_opt
assert mlacc_opt.main([{str(norm_file)!r}, "--canonicalize", "-o", {str(out)!r}]) == 0
assert mlacc_opt.main(["--help"]) == 0
# Targets' dialects and lowering passes load through their entry points (the sim target's
# `accel` dialect and `--accel-lower`), but nothing that needs torch or the frontend does.
heavy = [m for m in ("torch", "mlacc.frontend", "mlacc.compiler", "mlacc.runtime.executable",
                     "mlacc.backends.plan_builder") if m in sys.modules]
assert not heavy, heavy
assert "mlacc.backends.sim.lowering" in sys.modules  # --help listed the plug-in's pass
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


# --- bad input: one error line, exit 1, no traceback, no partial output ---


def test_malformed_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text('func.func @f(%x: tensor<4xf32>) {\n  %y = "mla.rms_norm"(%x, %x) {\n')
    proc = run_tool("mlacc-opt", str(bad))
    assert proc.returncode == 1 and proc.stdout == ""
    assert_one_error_line(proc, "mlacc-opt", f"{bad}:2:32: error: expected attribute name")


def test_verifier_failure_points_at_the_op(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text(NORM.replace("1.0e-6", "-1.0"))
    proc = run_tool("mlacc-opt", str(bad))
    assert_one_error_line(proc, "mlacc-opt", f"{bad}:3:8:", "'eps' must be positive")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--no-such-pass"], ["unknown command line argument '--no-such-pass'"]),
        (["--pass-pipeline=builtin.module(no-such-pass)"], ["unknown pass 'no-such-pass'"]),
        (["--pass-pipeline=builtin.module(cse"], ["unbalanced '('"]),
        (["--test-fail-on=opp=x"], ["pass 'test-fail-on' has no option 'opp'"]),
        (["--test-fail-on"], ["option 'op' is required"]),
        (["--canonicalize=max-iterations=x"], ["pass 'canonicalize'", "max-iterations"]),
        (["--cse", "--pass-pipeline=cse"], ["cannot be combined"]),
        (["-o"], ["option '-o' needs a value"]),
    ],
)
def test_bad_command_line(norm_file: Path, args: list[str], needles: list[str]) -> None:
    proc = run_tool("mlacc-opt", str(norm_file), *args)
    assert_one_error_line(proc, "mlacc-opt", "mlacc-opt: error:", *needles)
    assert proc.stdout == ""


def test_missing_input_file(tmp_path: Path) -> None:
    proc = run_tool("mlacc-opt", str(tmp_path / "nope.mlir"))
    assert_one_error_line(proc, "mlacc-opt", "cannot open input file", "nope.mlir")


def test_failure_leaves_no_output_file(tmp_path: Path, norm_file: Path) -> None:
    out = tmp_path / "out.mlir"
    proc = run_tool(
        "mlacc-opt", str(norm_file), "--test-fail-on=op=mla.rms_norm", "-o", str(out), cwd=tmp_path
    )
    assert_one_error_line(proc, "mlacc-opt", f"{norm_file}:3:8:")
    assert not out.exists()

    out.write_text("previous output\n")
    proc = run_tool(
        "mlacc-opt",
        str(norm_file),
        "--symbol-dce",
        "--test-fail-on=op=func.return",
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert out.read_text() == "previous output\n"
    leftovers = {p.name for p in tmp_path.iterdir()}
    assert leftovers == {"norm.mlir", "out.mlir", "mlacc-repro-test-fail-on.mlir"}, leftovers


def test_output_file_is_written_whole(tmp_path: Path, norm_file: Path) -> None:
    out = tmp_path / "out.mlir"
    proc = run_tool("mlacc-opt", str(norm_file), "--symbol-dce", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    text = out.read_text()
    assert text.startswith("module {") and '"mla.rms_norm"' in text and "@unused" not in text


def test_output_to_a_special_file_is_not_replaced(tmp_path: Path, norm_file: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    proc = run_tool("mlacc-opt", str(norm_file), "-o", str(fifo))
    reader.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe, not a file renamed over it
    assert received and received[0].startswith("module {")


def test_split_input_file_keeps_line_numbers(tmp_path: Path) -> None:
    src = tmp_path / "chunks.mlir"
    src.write_text(NORM + "\n// -----\n\n" + NORM.replace("1.0e-6", "-1.0"))
    proc = run_tool("mlacc-opt", str(src), "--split-input-file")
    second_op_line = NORM.count("\n") + 3 + 3
    assert_one_error_line(proc, "mlacc-opt", f"{src}:{second_op_line}:8:")
    assert proc.stdout.count("module {") == 1


def test_internal_errors_are_one_line(
    norm_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something broke")

    monkeypatch.setattr(mlacc_opt, "_process_chunk", boom)
    assert mlacc_opt.main([str(norm_file)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "mlacc-opt: error: internal error: RuntimeError: something broke "
        "(MLACC_DEBUG=1 shows a traceback)"
    ]


def test_reproducer_command_reproduces(tmp_path: Path, norm_file: Path) -> None:
    proc = run_tool(
        "mlacc-opt", str(norm_file), "--symbol-dce", "--test-fail-on=op=mla.rms_norm", cwd=tmp_path
    )
    assert proc.returncode == 1
    command = proc.stderr.splitlines()[-1].removeprefix("mlacc-opt: note: reproduce with: ")
    assert command == (
        "mlacc-opt mlacc-repro-test-fail-on.mlir "
        "--pass-pipeline='builtin.module(test-fail-on{op=mla.rms_norm})'"
    )
    repro = (tmp_path / "mlacc-repro-test-fail-on.mlir").read_text()
    assert "@unused" not in repro  # the IR after symbol-dce, before the failing step
    again = subprocess.run(
        command,
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(Path(sys.executable).parent)},
    )
    assert again.returncode == 1
    assert f"{norm_file}:3:8: error: test-fail-on: failing on 'mla.rms_norm'" in again.stderr


# --- the pipeline parser ---


def test_bare_and_wrapped_pipelines_are_the_same() -> None:
    bare = parse_pipeline("test-fail-on{op=mla.attention},func.func(cse, canonicalize),cse")
    wrapped = parse_pipeline(
        "builtin.module(test-fail-on{ op=mla.attention }, func.func(cse, canonicalize), cse)"
    )
    assert [s.text for s in bare] == [s.text for s in wrapped]
    assert [s.name for s in bare] == ["test-fail-on", "func.func", "cse"]
    assert bare[0].info is registry.get_pass("test-fail-on")
    assert bare[0].options == registry.TestFailOnOptions(op="mla.attention")
    assert bare[1].info is None and bare[1].text == "func.func(cse, canonicalize)"
    assert format_pipeline(bare) == (
        "builtin.module(test-fail-on{op=mla.attention},func.func(cse, canonicalize),cse)"
    )
    assert parse_pipeline("") == [] and parse_pipeline("builtin.module()") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-such-pass", "unknown pass 'no-such-pass'"),
        ("func.func(no-such-pass)", "unknown pass 'no-such-pass'"),
        ("test-fail-on{opp=x}", "has no option 'opp' (its options: op)"),
        ("test-fail-on", "option 'op' is required"),
        ("func.func(test-fail-on{op=x})", "use it at the top level of the pipeline"),
        ("test-fail-on(cse)", "is a pass, not an op to nest a pipeline under"),
        ("cse,,canonicalize", "expected a pass name"),
        ("cse{", "unbalanced '{'"),
        ("canonicalize{max-iterations=x}", "pass 'canonicalize':"),
    ],
)
def test_pipeline_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(PipelineParseError) as info:
        parse_pipeline(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@dataclasses.dataclass(frozen=True)
class _TypedOptions:
    block: int = option(128, "block size")
    scale: float = option(1.0, "a float")
    pow2_scale: bool = option(False, "a flag")
    mode: Literal["auto", "always", "never"] = option("auto", "a choice")
    entry_points: tuple[str, ...] = option((), "a list")


@pytest.fixture
def typed_pass(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ir.Operation, _TypedOptions]]:
    seen: list[tuple[ir.Operation, _TypedOptions]] = []
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_pass(
        "test-typed", "records its options", _TypedOptions, lambda op, opts: seen.append((op, opts))
    )
    return seen


def test_typed_options(typed_pass: list) -> None:
    (step,) = parse_pipeline(
        "test-typed{block=64 scale=0.5, pow2_scale=true mode=never entry-points={prefill,decode}}"
    )
    assert step.options == _TypedOptions(64, 0.5, True, "never", ("prefill", "decode"))
    assert step.text == (
        "test-typed{block=64 scale=0.5 pow2-scale=true mode=never entry-points={prefill,decode}}"
    )
    (flag_only,) = parse_pipeline("test-typed{pow2-scale}")
    assert flag_only.options.pow2_scale is True
    assert parse_pipeline(step.text)[0].options == step.options  # text round trip
    for text, message in [
        ("test-typed{block=big}", "bad value 'big' for option 'block' (int)"),
        ("test-typed{mode=sometimes}", "expected one of auto, always, never"),
        ("test-typed{pow2-scale=maybe}", "expected true or false"),
    ]:
        with pytest.raises(PipelineParseError) as info:
            parse_pipeline(text)
        assert message in str(info.value)


def test_help_lists_registered_passes(typed_pass: list, capsys: pytest.CaptureFixture) -> None:
    assert mlacc_opt.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--test-typed" in out and "records its options" in out
    assert "mode=<auto|always|never>" in out and "(default: auto)" in out
    assert "--test-fail-on" in out


def test_register_pass_rejects_bad_registrations() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_pass("test-fail-on", "again", registry.NoOptions, lambda op, o: None)

    @dataclasses.dataclass
    class Mutable:
        x: int = 1

    with pytest.raises(ValueError, match="frozen dataclass"):
        register_pass("test-mutable", "bad", Mutable, lambda op, o: None)


# --- run_pipeline ---


def _module(ctx: ir.Context, text: str = NORM, name: str = "norm.mlir"):
    return parse_module(text, name, ctx)


def test_run_pipeline_transforms_in_place() -> None:
    ctx = make_context()
    module = _module(ctx)
    run_pipeline(module, "symbol-dce,canonicalize")
    text = str(module.operation)
    assert "@unused" not in text and '"mla.rms_norm"' in text


def test_print_ir_after_all_to_a_directory(tmp_path: Path) -> None:
    ctx = make_context()
    module = _module(ctx)
    run_pipeline(
        module,
        "builtin.module(symbol-dce,func.func(cse),canonicalize)",
        print_ir_after_all=tmp_path / "ir",
    )
    dumps = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert dumps == ["01-symbol-dce.mlir", "02-func.func.mlir", "03-canonicalize.mlir"]
    first = (tmp_path / "ir" / dumps[0]).read_text()
    assert first.startswith("// IR after step 1: symbol-dce\n") and "@unused" not in first


def test_print_ir_after_all_to_a_callable() -> None:
    ctx = make_context()
    seen = []
    run_pipeline(
        _module(ctx),
        "cse,canonicalize",
        print_ir_after_all=lambda i, step, op: seen.append((i, step.text, op.name)),
    )
    assert seen == [(1, "cse", "builtin.module"), (2, "canonicalize", "builtin.module")]


def test_failing_step_raises_with_location_and_reproducer(tmp_path: Path) -> None:
    ctx = make_context()
    module = _module(ctx)
    with pytest.raises(PipelineError) as info:
        run_pipeline(
            module,
            "symbol-dce,test-fail-on{op=mla.rms_norm},cse",
            repro_dir=tmp_path,
            source_name="norm.mlir",
        )
    err = info.value
    assert err.location == "norm.mlir:3:8"
    assert err.message == "test-fail-on: failing on 'mla.rms_norm' as asked"
    assert err.step == "test-fail-on{op=mla.rms_norm}"
    assert err.repro_path == tmp_path / "mlacc-repro-test-fail-on.mlir"
    assert err.repro_command == (
        f"mlacc-opt {tmp_path}/mlacc-repro-test-fail-on.mlir "
        "--pass-pipeline='builtin.module(test-fail-on{op=mla.rms_norm})'"
    )
    assert str(err).splitlines()[0] == f"norm.mlir:3:8: error: {err.message}"
    assert str(err).splitlines()[-1] == f"note: reproduce with: {err.repro_command}"
    repro = err.repro_path.read_text()
    assert "@unused" not in repro and 'loc("norm.mlir":3:8)' in repro


def test_pass_exceptions_become_diagnostics(typed_pass: list) -> None:
    def failing(op: ir.Operation, options: object) -> None:
        funcs = [o for o in op.regions[0].blocks[0].operations if o.operation.name == "func.func"]
        raise PassError("cannot handle this function", op=funcs[0])

    def buggy(op: ir.Operation, options: object) -> None:
        raise KeyError("w_uk")

    ctx = make_context()
    register_pass("test-pass-error", "raises PassError", registry.NoOptions, failing)
    register_pass("test-bug", "raises KeyError", registry.NoOptions, buggy)
    with pytest.raises(PipelineError) as info:
        run_pipeline(_module(ctx), "test-pass-error", reproducer=False)
    assert info.value.location == "norm.mlir:2:1"
    assert info.value.message == "cannot handle this function"
    assert info.value.repro_path is None
    with pytest.raises(PipelineError) as info:
        run_pipeline(_module(ctx), "test-bug", reproducer=False)
    assert info.value.location == "norm.mlir:1:1"  # the (implicit) module's location
    assert info.value.message == "pass 'test-bug' raised KeyError: 'w_uk'"


def test_lazy_pass_is_imported_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    info = register_pass(
        "test-lazy", "lazily loaded", registry.NoOptions, "mlacc.passes.registry:_test_fail_on"
    )
    assert info.load() is registry._test_fail_on


# --- parsing input ---


def test_parse_module_implicit_module_and_diagnostics() -> None:
    ctx = make_context()
    module = _module(ctx)
    assert module.operation.name == "builtin.module"
    assert [op.operation.name for op in module.operation.regions[0].blocks[0].operations] == [
        "func.func",
        "func.func",
    ]
    with pytest.raises(SourceError) as info:
        _module(ctx, NORM.replace("tensor<8xf32>)", "tensor<4xf32>)", 1))
    (diag,) = info.value.diagnostics
    assert diag.severity == "error" and diag.location.startswith("norm.mlir:")


def test_split_chunks_keep_line_numbers() -> None:
    chunks = mlacc_opt.split_chunks("a\n// -----\nb\nc\n  // -----  \nd", "// -----")
    assert [c.split("\n") for c in chunks] == [["a"], ["", "", "b", "c"], ["", "", "", "", "", "d"]]


@dataclasses.dataclass(frozen=True)
class _LimitedOptions:
    block: int = option(128, "block size", positive=True, max=4096, power_of_two=True)
    rate: float = option(1.0, "a rate", min=0.0)
    counts: tuple[float, ...] = option((), "per-item counts", min=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("block=0", "option 'block' must be positive, got 0"),
        ("block=96", "option 'block' must be a power of two, got 96"),
        ("block=8192", "option 'block' must be <= 4096, got 8192"),
        ("rate=-0.5", "option 'rate' must be >= 0.0, got -0.5"),
        ("rate=nan", "option 'rate' must be finite, got nan"),
        ("rate=-inf", "option 'rate' must be finite, got -inf"),
        ("counts={1,inf}", "option 'counts' entry 1 must be finite, got inf"),
        ("counts={1,-2}", "option 'counts' entry 1 must be >= 0, got -2.0"),
        ("block=64 block=32", "option 'block' is given twice"),
        ("rate=1 rate=1", "option 'rate' is given twice"),
    ],
)
def test_option_limits_are_one_mechanism(
    monkeypatch: pytest.MonkeyPatch, options: str, message: str
) -> None:
    """Limits declared on `option(...)` apply to any pass, without code in the pass."""
    registry.all_passes()  # discover into the real registry before it is swapped for a copy
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_pass("test-limited", "declares limits", _LimitedOptions, lambda op, opts: None)
    (ok,) = parse_pipeline("test-limited{block=64 rate=0 counts={0,3.5}}")
    assert ok.options == _LimitedOptions(64, 0.0, (0.0, 3.5))
    with pytest.raises(PipelineParseError) as info:
        parse_pipeline(f"test-limited{{{options}}}")
    assert str(info.value) == f"pass 'test-limited': {message}"


def test_every_numeric_pass_option_declares_a_range() -> None:
    """mlacc's graph passes' int and float options all say which values make sense."""
    flags = ("mla-absorb-weights", "mla-fuse-rope", "moe-group-experts", "quantize-fp8")
    for info in (registry.get_pass(flag) for flag in flags):
        assert info is not None
        for opt in info.option_infos():
            item = opt.type
            if getattr(item, "__origin__", None) is tuple:
                item = item.__args__[0]
            if item in (int, float):
                assert opt.limits_text, f"--{info.flag} option '{opt.name}' declares no range"


@pytest.mark.parametrize(
    "text",
    [
        "func.func @f() attributes {a = " + "[" * 50000 + "]" * 50000 + "} { return }",
        "func.func @f(%x: " + "tuple<" * 20000 + "i32" + ">" * 20000 + ") { return }",
        '"a.b"() ({' * 20000 + "}) : () -> ()" * 20000,
    ],
    ids=["attribute", "type", "region"],
)
def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path, text: str) -> None:
    """Nesting that overflowed MLIR's recursive parser (SIGSEGV) is refused before parsing."""
    deep = tmp_path / "deep.mlir"
    deep.write_text(text)
    out = tmp_path / "out.mlir"
    proc = run_tool("mlacc-opt", str(deep), "--allow-unregistered-dialect", "-o", str(out))
    assert_one_error_line(proc, "mlacc-opt", f"{deep}:1:", "nesting deeper than 256 levels")
    assert not out.exists()


def test_nesting_limit_ignores_strings_and_comments() -> None:
    text = '// [[[[[[\nfunc.func @f() attributes {s = "' + "[" * 1000 + '"} {\n  return\n}\n'
    with make_context():
        parse_module(text, "strings.mlir")
