#!/usr/bin/env python3
"""Fuzzes `mlacc-opt` with mutated MLIR: no crash, no hang, no traceback, one-line errors.

python test/fuzz/fuzz_mlacc_opt.py --examples 2000 [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from mlacc.tools import mlacc_opt

ROOT = Path(__file__).resolve().parents[2]
LAST = Path("fuzz-last-mlacc-opt.mlir")
ERROR_LINE = re.compile(r"^(?:\S.*?: )?(?:error|warning|note|remark): |^mlacc-opt: ")

TOKENS = [
    "f32",
    "bf16",
    "i64",
    "si64",
    "f8E4M3FN",
    "i1",
    "tensor<4xf32>",
    "!torch.vtensor<[2,3],f32>",
    "!torch.vtensor<[?,8],f32>",
    "0",
    "1",
    "-1",
    "128",
    "99999999999999999999",
    "1.0e+400",
    "true",
    '"interleaved"',
    '"bogus"',
    "{}",
    "[]",
    "array<i64: 1, 2>",
    "%arg0",
    "%0",
    '"mla.attention"',
    '"moe.router"',
    '"fp8.matmul"',
    '"mlacc.weight"',
    "(",
    ")",
    "{",
    "}",
    "<",
    ">",
    ":",
    ",",
    "=",
    "->",
    "//",
    "// -----",
    "\n",
    "\x00",
    "\u00e9",
]
PASS_FLAGS = [
    "--canonicalize",
    "--cse",
    "--symbol-dce",
    "--mlir-print-op-generic",
    "--split-input-file",
    "--verify-diagnostics",
    "--test-fail-on=op=mla.rms_norm",
    "--pass-pipeline=builtin.module(cse,canonicalize)",
]


def corpus() -> list[str]:
    """The valid inputs mutations start from."""
    files = sorted((ROOT / "test").rglob("*.mlir"))
    texts = [p.read_text() for p in files if "Output" not in p.parts]
    try:
        from mlacc.backends.testing import sample_text
        from mlacc.backends.testing.samples import SAMPLES

        texts += [sample_text(name) for name in SAMPLES]
    except ImportError:
        pass
    return texts


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = min(len(text), i + draw(st.integers(0, 40)))
        kind = draw(
            st.sampled_from(["delete", "replace", "insert", "dup_line", "truncate", "digits"])
        )
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "replace":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS) | st.text(max_size=8)) + text[i:]
        elif kind == "dup_line":
            lines = text.splitlines(keepends=True)
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(k, lines[k])
            text = "".join(lines)
        elif kind == "truncate":
            text = text[:i]
        else:
            text = re.sub(
                r"\d+",
                lambda m: str(draw(st.integers(0, 300))),
                text,
                count=draw(st.integers(1, 5)),
            )
    return text


def check(text: str, flags: list[str]) -> None:
    """Runs mlacc-opt in-process on `text`; fails on anything but a clean accept/reject."""
    LAST.write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = mlacc_opt.main([str(LAST), *flags])
    stderr = err.getvalue()
    assert code in (0, 1), f"exit code {code}\n{stderr}"
    assert "Traceback (most recent call last)" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    if code == 1:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert lines, "failed without saying why"
        assert any(ERROR_LINE.match(line) for line in lines), stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    texts = corpus()

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=10_000,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated(texts), st.lists(st.sampled_from(PASS_FLAGS), max_size=3, unique=True))
    def fuzz(text: str, flags: list[str]) -> None:
        check(text, flags)

    fuzz()
    LAST.unlink(missing_ok=True)
    print(f"fuzz_mlacc_opt: {args.examples} cases from {len(texts)} seed inputs, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
