#!/usr/bin/env python3
"""A fuzz campaign over every input mlacc reads, with crash and hang isolation.

    python test/fuzz/campaign.py --cases 10000 [--seed 0] [--hang-timeout 60] [--json out.json]

Targets (cases split by `SHARES`; each case is deterministic in (seed, target, index)):

- ``mlir``: `mlacc-opt` on grammar-aware mutations (SSA values swapped, types and dimensions
  edited, literals set to boundary values, op names, attributes and segment sizes changed,
  lines duplicated/dropped, deep nesting) of captured modules, the lit corpus and the samples,
  with random pass flags and ``-o``; plus the byte-level mutations of `fuzz_mlacc_opt`.
- ``options``: `mlacc-opt --pass-pipeline` / pass flags with generated option names and values
  (boundary numbers, nan/inf, lists, quotes, duplicates, nested anchors).
- ``device``: mutated sim device TOMLs, loaded and, when they load, compiled for.
- ``artifact``: mutated `.mlacc` files, loaded and run (`fuzz_artifact.check`).
- ``pt2``: mutated `.pt2` archives (JSON fields, members dropped or replaced, pickled payloads
  that would create a marker file if unpickled), loaded through `mlacc.compile`.

Cases run in worker processes (one per target, in-process calls for speed). The parent watches
each worker: a worker killed by a signal is a crash, one silent for ``--hang-timeout`` seconds
is a hang; either way the case is recorded (its input kept under ``findings/``) and a fresh
worker continues after it. Every case must end in success or one clear error; a Python
traceback, an "internal error", an exception that is not an `MlaccError`, a partial output file
or code run from a file is a finding. Files a worker leaves in its working or temp directory
are reported too. Exit status 0 only when nothing was found.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

SHARES = {"mlir": 0.5, "options": 0.15, "device": 0.1, "artifact": 0.15, "pt2": 0.1}
OWN_FILES = re.compile(r"^(case\..*|out\.mlir|mlacc-repro-.*\.mlir|seed.*|fuzz-last-.*)$")


class Finding(Exception):
    """A case that did not end in success or one clear error."""


# --- mutations -----------------------------------------------------------------------------

BOUNDARY_INTS = [
    "0",
    "-1",
    "1",
    "2",
    "3",
    "7",
    "128",
    "4096",
    "2147483648",
    "-9223372036854775808",
    "9223372036854775807",
    "99999999999999999999",
]
BOUNDARY_FLOATS = [
    "0.0",
    "-0.0",
    "1.0e+400",
    "-1.0e-400",
    "0x7FF0000000000000",
    "0x7FF8000000000000",
    "0xFFF0000000000000",
    "1.0e-45",
    "nan",
    "inf",
]
DTYPES = [
    "f32",
    "bf16",
    "f16",
    "f64",
    "i1",
    "i32",
    "i64",
    "si64",
    "f8E4M3FN",
    "index",
    "complex<f32>",
]
OP_NAMES = [
    '"mla.attention"',
    '"mla.rms_norm"',
    '"mla.latent_attention"',
    '"mla.cache_update"',
    '"mla.rope_tables"',
    '"moe.router"',
    '"moe.experts"',
    '"moe.dispatch"',
    '"fp8.matmul"',
    '"fp8.quantize"',
    '"mlacc.weight"',
    '"torch.aten.mm"',
    '"func.return"',
]
TYPE_RE = re.compile(r"(?:!torch\.vtensor<\[[^\]]*\],[^>]*>|tensor<[^<>]*>)")
SSA_RE = re.compile(r"%[\w$.#-]+")
INT_RE = re.compile(r"(?<![\w.])-?\d+(?![\w.])")
FLOAT_RE = re.compile(r"-?\d+\.\d+(?:e[+-]?\d+)?")
STR_RE = re.compile(r'"[^"\n]*"')
OPNAME_RE = re.compile(r'"[a-z_]+\.[a-z_.]+"')
ATTR_RE = re.compile(r"\b\w+ = [^,{}()\n]+(?:, )?")
DIMS_RE = re.compile(r"(tensor<|vtensor<\[)([^>\]]*)")


def _pick(rng: random.Random, regex: re.Pattern, text: str) -> re.Match | None:
    matches = list(regex.finditer(text))
    return rng.choice(matches) if matches else None


def _splice(text: str, m: re.Match, new: str) -> str:
    return text[: m.start()] + new + text[m.end() :]


def mutate_mlir(rng: random.Random, text: str) -> str:
    """One to four grammar-aware edits (falls back to byte-level edits)."""
    from fuzz_mlacc_opt import TOKENS

    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(
            [
                "ssa",
                "type",
                "dims",
                "int",
                "float",
                "string",
                "op",
                "drop_attr",
                "segments",
                "dup_line",
                "drop_line",
                "swap_lines",
                "nest",
                "token",
                "truncate",
            ]
        )
        text = _edit(rng, kind, text, TOKENS)
    return text


def _edit(rng: random.Random, kind: str, text: str, tokens: list[str]) -> str:
    lines = text.split("\n")
    if kind in ("dup_line", "drop_line", "swap_lines"):
        if len(lines) < 2:
            return text
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if kind == "dup_line":
            lines.insert(j, lines[i])
        elif kind == "drop_line":
            del lines[i]
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if kind == "nest":
        depth = rng.choice([10, 200, 300, 5000])
        pos = rng.randrange(len(text) + 1)
        opener = rng.choice(["[", "{", "(", "tensor<", "tuple<"])
        closer = {"[": "]", "{": "}", "(": ")"}.get(opener, ">")
        return text[:pos] + opener * depth + closer * depth + text[pos:]
    if kind == "truncate":
        return text[: rng.randrange(len(text) + 1)]
    if kind == "token":
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + rng.choice(tokens) + text[pos + rng.randint(0, 8) :]
    regex, make = _REPLACERS[kind]
    m = _pick(rng, regex, text)
    return text if m is None else _splice(text, m, make(rng, m, text))


def _new_dims(rng: random.Random, m: re.Match, _text: str) -> str:
    dims = re.split(r"([x,])", m.group(2))
    idx = [i for i, d in enumerate(dims) if re.fullmatch(r"\??-?\d*", d) and d]
    if idx:
        dims[rng.choice(idx)] = rng.choice(["0", "?", "-1", "1", "3", "4096", "99999999999"])
    return m.group(1) + "".join(dims)


_REPLACERS: dict[str, tuple[re.Pattern, Callable[[random.Random, re.Match, str], str]]] = {
    "ssa": (SSA_RE, lambda r, m, t: r.choice(SSA_RE.findall(t))),
    "type": (
        TYPE_RE,
        lambda r, m, t: re.sub(
            r"(f32|bf16|f16|i64|i32|i1)\b", r.choice(DTYPES), r.choice(TYPE_RE.findall(t)), count=1
        ),
    ),
    "dims": (DIMS_RE, _new_dims),
    "int": (INT_RE, lambda r, m, t: r.choice(BOUNDARY_INTS)),
    "float": (FLOAT_RE, lambda r, m, t: r.choice(BOUNDARY_FLOATS)),
    "string": (
        STR_RE,
        lambda r, m, t: r.choice(['""', '"x"', r.choice(STR_RE.findall(t)), '"' + "a" * 300 + '"']),
    ),
    "op": (OPNAME_RE, lambda r, m, t: r.choice(OP_NAMES)),
    "drop_attr": (ATTR_RE, lambda r, m, t: ""),
    "segments": (
        re.compile(r"array<i32: [^>]*>"),
        lambda r, m, t: (
            "array<i32: "
            + ", ".join(r.choice(["0", "1", "2", "-1"]) for _ in range(r.randint(0, 14)))
            + ">"
        ),
    ),
}

OPTION_VALUES = (
    BOUNDARY_INTS
    + BOUNDARY_FLOATS
    + [
        "",
        "true",
        "false",
        "auto",
        "always",
        "never",
        "{}",
        "{1,2,-3}",
        "{",
        "}",
        '"',
        "'x'",
        "1,2",
        "0x10",
        "1e3",
        "-inf",
        "NaN",
        "128 128",
        "=",
        "{{1}}",
    ]
)


def pipeline_text(rng: random.Random) -> list[str]:
    """Command-line arguments: a generated pipeline or pass flags."""
    from mlacc.passes.registry import all_passes

    passes = all_passes()
    steps = []
    for _ in range(rng.randint(0, 4)):
        info = rng.choice(passes)
        names = [o.name for o in info.option_infos()] + ["bogus", "", "-"]
        opts = " ".join(
            f"{rng.choice(names)}={rng.choice(OPTION_VALUES)}" for _ in range(rng.randint(0, 3))
        )
        step = info.flag + (f"{{{opts}}}" if opts or rng.random() < 0.1 else "")
        steps.append(
            rng.choice(
                [
                    step,
                    step,
                    "cse",
                    "canonicalize{max-iterations=-1}",
                    "func.func(cse)",
                    "func.func(builtin.module(cse))",
                    "bogus-pass",
                    "symbol-dce",
                    "inline",
                ]
            )
        )
    if rng.random() < 0.5:
        text = ",".join(steps)
        text = rng.choice([text, f"builtin.module({text})", f"any({text})", text + ")", "(" + text])
        return [f"--pass-pipeline={text}"]
    return [f"--{s}" if "{" not in s else "--" + s.replace("{", "=", 1).rstrip("}") for s in steps]


def mutate_toml(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        kind = rng.choice(["value", "value", "drop", "dup", "key", "section", "garbage"])
        line = lines[i]
        if kind == "value" and "=" in line:
            key = line.split("=", 1)[0]
            value = rng.choice(
                [
                    *BOUNDARY_INTS,
                    "nan",
                    "inf",
                    "-inf",
                    "-1.5",
                    '"x"',
                    "[]",
                    "[0, 0]",
                    "{ bf16 = 0 }",
                    "{ fp8 = -1 }",
                    "true",
                    "1e308",
                ]
            )
            lines[i] = f"{key}= {value}"
        elif kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(rng.randrange(len(lines)), line)
        elif kind == "key" and "=" in line:
            lines[i] = "bogus_key" + line[line.index("=") - 1 :]
        elif kind == "section":
            lines.insert(i, rng.choice(["[core]", "[hbm]", "[bogus]", "[[core]]", "[core.tensor]"]))
        else:
            lines.insert(i, rng.choice(["=", "[", "x = ", "a = 1\na = 2", "\x00", "name = 5"]))
        if not lines:
            lines = [""]
    return "\n".join(lines)


def mutate_json(rng: random.Random, data: bytes) -> bytes:
    """A JSON document with one value replaced or one key dropped (bytes-level if not JSON)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data[: rng.randrange(len(data) + 1)]
    from fuzz_artifact import _paths, _set

    paths = _paths(doc)
    if not paths:
        return b"[]"
    value = rng.choice([None, True, -1, 0, 2**63, 1.5, float("nan"), "", "x", [], {}, [0] * 3])
    doc = _set(doc, rng.choice(paths), value, rng.random() < 0.3)
    return json.dumps(doc).encode()


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    kind = rng.choice(["flip", "truncate", "splice"])
    if kind == "flip" and raw:
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        raw = raw[: rng.randrange(len(raw) + 1)]
    elif raw:
        i = rng.randrange(len(raw))
        raw[i:i] = raw[rng.randrange(len(raw)) :][: rng.randint(1, 64)]
    return bytes(raw)


def mutate_zip(rng: random.Random, data: bytes, payload: bytes) -> bytes:
    """An archive with one member edited (JSON-aware), dropped, replaced by a pickle payload,
    or the whole file byte-mutated."""
    if rng.random() < 0.15:
        return mutate_bytes(rng, data)
    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    target = rng.choice(names)
    kind = rng.choice(["json", "json", "drop", "payload", "use_pickle", "bytes"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in names:
            member = src.read(name)
            if name == target:
                if kind == "drop":
                    continue
                if kind == "json":
                    member = mutate_json(rng, member)
                elif kind == "payload":
                    member = payload
                elif kind == "bytes":
                    member = mutate_bytes(rng, member)
            if kind == "use_pickle" and name.endswith("_config.json"):
                member = member.replace(b'"use_pickle": false', b'"use_pickle": true')
            dst.writestr(name, member)
    return out.getvalue()


class _Payload:
    """Unpickling this creates the directory `marker` (code from the file ran)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.makedirs, (self.marker,))


# --- the targets ---------------------------------------------------------------------------


def run_opt(argv: list[str], output: Path | None) -> None:
    """`mlacc-opt` in-process; a finding unless it succeeds or fails with one clear error."""
    from fuzz_mlacc_opt import ERROR_LINE

    from mlacc.tools import mlacc_opt

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = mlacc_opt.main(argv)
    stderr = err.getvalue()
    if code not in (0, 1):
        raise Finding(f"exit code {code}: {stderr[-500:]}")
    if "Traceback (most recent call last)" in stderr or "internal error" in stderr:
        raise Finding(f"traceback: {stderr[-1500:]}")
    if code == 1:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        if not any(ERROR_LINE.match(ln) for ln in lines):
            raise Finding(f"failed without an error line: {stderr[-500:]}")
        if output is not None and output.exists():
            raise Finding("failed but left the output file behind")


class Target:
    """Seeds and the case runner of one target."""

    def __init__(self, name: str, seed_dir: Path) -> None:
        self.name = name
        self.seed_dir = seed_dir
        self.seeds: list[Any] = getattr(self, f"_seeds_{name}")()

    def case(self, rng: random.Random) -> tuple[str, Callable[[], None]]:
        """(a description to keep, the call that runs the case)."""
        return getattr(self, f"_case_{self.name}")(rng)

    # mlir
    def _seeds_mlir(self) -> list[str]:
        from fuzz_mlacc_opt import corpus

        captured = sorted(self.seed_dir.glob("captured-*.mlir"))
        return [p.read_text() for p in captured] * 10 + corpus()

    def _case_mlir(self, rng: random.Random) -> tuple[str, Callable[[], None]]:
        from fuzz_mlacc_opt import PASS_FLAGS

        text = mutate_mlir(rng, rng.choice(self.seeds))
        path = Path("case.mlir")
        path.write_text(text, errors="replace")
        flags = rng.sample(
            [
                *PASS_FLAGS,
                *("--mla-absorb-weights", "--mla-fuse-rope", "--moe-group-experts"),
                "--quantize-fp8",
            ],
            rng.randint(0, 3),
        )
        if "--split-input-file" in flags and "--verify-diagnostics" in flags:
            flags.remove("--verify-diagnostics")
        out = Path("out.mlir")
        out.unlink(missing_ok=True)
        argv = [str(path), *flags, "-o", str(out)]
        return " ".join(argv), lambda: run_opt(argv, out)

    # options
    def _seeds_options(self) -> list[str]:
        return [str(p) for p in sorted(self.seed_dir.glob("captured-*.mlir"))] + [
            str(p) for p in sorted(self.seed_dir.glob("sample-*.mlir"))
        ]

    def _case_options(self, rng: random.Random) -> tuple[str, Callable[[], None]]:
        out = Path("out.mlir")
        out.unlink(missing_ok=True)
        argv = [rng.choice(self.seeds), *pipeline_text(rng), "-o", str(out)]
        return " ".join(argv), lambda: run_opt(argv, out)

    # device
    def _seeds_device(self) -> list[str]:
        return [p.read_text() for p in sorted((ROOT / "backends/sim/devices").glob("*.toml"))]

    def _case_device(self, rng: random.Random) -> tuple[str, Callable[[], None]]:
        text = mutate_toml(rng, rng.choice(self.seeds))
        path = Path("case.toml")
        path.write_text(text, errors="replace")
        sample = rng.choice(["torch_ops", "latent_attention", "grouped_moe", "fp8_linear"])

        def run() -> None:
            import mlacc
            from mlacc.backends.testing import compile_sample
            from mlacc.runtime.sim.device import load_device

            try:
                load_device(path)
                compile_sample(sample, "sim", device=str(path))
            except mlacc.MlaccError as err:
                if not str(err).strip():
                    raise Finding("an error without a message") from None

        return text, run

    # artifact
    def _seeds_artifact(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.seed_dir.glob("seed-*.mlacc"))]

    def _case_artifact(self, rng: random.Random) -> tuple[str, Callable[[], None]]:
        from fuzz_artifact import check

        seed_bytes = rng.choice(self.seeds)
        if rng.random() < 0.5:
            data = mutate_bytes(rng, seed_bytes)
        else:
            data = mutate_zip(rng, seed_bytes, b"")
        Path("case.mlacc").write_bytes(data)

        def run() -> None:
            try:
                check(data)
            except AssertionError as err:
                raise Finding(str(err)) from None
            finally:
                Path("fuzz-last-artifact.mlacc").unlink(missing_ok=True)

        return "case.mlacc", run

    # pt2
    def _seeds_pt2(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.seed_dir.glob("seed-*.pt2"))]

    def _case_pt2(self, rng: random.Random) -> tuple[str, Callable[[], None]]:
        import pickle

        marker = Path("code-ran-marker").absolute()
        payload = pickle.dumps(_Payload(str(marker)))
        data = mutate_zip(rng, rng.choice(self.seeds), payload)
        path = Path("case.pt2")
        path.write_bytes(data)

        def run() -> None:
            import mlacc

            try:
                mlacc.compile(str(path), target="reference")
            except mlacc.MlaccError as err:
                if not str(err).strip():
                    raise Finding("an error without a message") from None
            finally:
                if marker.exists():
                    marker.rmdir()
                    raise Finding("code from the .pt2 file ran")

        return "case.pt2", run


def make_seeds(seed_dir: Path) -> None:
    """Captured modules, sample modules, artifacts and .pt2 files to mutate (made once)."""
    import torch

    import mlacc
    from mlacc.backends.testing import compile_sample, sample_text
    from mlacc.backends.testing.samples import SAMPLES

    for name in ("deepseek-v3-tiny", "deepseek-v2-tiny"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlacc.tools.mlacc_main",
                "capture",
                name,
                "-o",
                str(seed_dir / f"captured-{name}.mlir"),
            ],
            check=True,
            capture_output=True,
        )
    for name in SAMPLES:
        (seed_dir / f"sample-{name}.mlir").write_text(sample_text(name))
    for name in ("torch_ops", "latent_attention", "grouped_moe"):
        compile_sample(name, "reference").save(seed_dir / f"seed-{name}.mlacc")
    models = {
        "linear": (torch.nn.Linear(8, 4), (torch.randn(2, 8),)),
        "mlp": (
            torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.SiLU(), torch.nn.Linear(16, 8)),
            (torch.randn(3, 8),),
        ),
    }
    for name, (model, args) in models.items():
        torch.export.save(torch.export.export(model, args), str(seed_dir / f"seed-{name}.pt2"))
    assert mlacc  # the import registers everything the workers need


# --- worker and parent ----------------------------------------------------------------------


def worker(target: str, start: int, stop: int, seed: int, seed_dir: Path) -> int:
    """Runs cases [start, stop) of `target`, printing ``case N`` before and ``ok N``/``found N
    <why>`` after each; the parent watches this stream."""
    runner = Target(target, seed_dir)
    for index in range(start, stop):
        rng = random.Random(f"{seed}:{target}:{index}")
        try:
            description, run = runner.case(rng)
        except Exception as err:  # noqa: BLE001 - a bug of the harness, reported as such
            print(f"harness {index} {json.dumps(f'{type(err).__name__}: {err}')}", flush=True)
            continue
        Path(f"case.{target}.txt").write_text(description, errors="replace")
        print(f"case {index}", flush=True)
        try:
            run()
            print(f"ok {index}", flush=True)
        except Finding as err:
            print(f"found {index} {json.dumps(str(err)[:2000])}", flush=True)
        except Exception as err:  # noqa: BLE001 - an escaped exception is a finding
            import traceback

            tb = traceback.format_exc()[-2000:]
            print(f"found {index} {json.dumps(f'{type(err).__name__}: {err}: {tb}')}", flush=True)
    return 0


def run_target(
    target: str, count: int, args: argparse.Namespace, seed_dir: Path, findings: Path
) -> dict[str, Any]:
    """Runs `count` cases of `target` in workers, restarting after crashes and hangs."""
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    try:
        return _run_workers(target, count, args, seed_dir, findings, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_workers(
    target: str,
    count: int,
    args: argparse.Namespace,
    seed_dir: Path,
    findings: Path,
    work: Path,
) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "cases": 0,
        "crashes": 0,
        "hangs": 0,
        "findings": 0,
        "harness_errors": 0,
        "leftovers": [],
    }
    tmp = work / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(HERE)}
    next_case = 0
    while next_case < count:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            target,
            "--start",
            str(next_case),
            "--stop",
            str(count),
            "--seed",
            str(args.seed),
            "--seed-dir",
            str(seed_dir),
        ]
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        current, last_seen = next_case - 1, [time.monotonic()]
        lines: list[str] = []

        def read(
            proc: subprocess.Popen = proc, lines: list[str] = lines, seen: list = last_seen
        ) -> None:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                seen[0] = time.monotonic()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        hung = False
        while proc.poll() is None:
            time.sleep(0.2)
            started = any(ln.startswith("case ") for ln in lines)
            limit = args.hang_timeout + (0 if started else 120)  # a worker's start-up
            if time.monotonic() - last_seen[0] > limit:
                proc.kill()
                hung = True
        proc.wait()
        reader.join(5)
        for line in lines:
            word, _, rest = line.partition(" ")
            if word == "case":
                current = int(rest)
            elif word == "ok":
                stats["cases"] += 1
            elif word == "harness":
                index, _, why = rest.partition(" ")
                stats["harness_errors"] += 1
                print(f"  harness error: {target} case {index}: {json.loads(why)[:200]}")
            elif word == "found":
                index, _, why = rest.partition(" ")
                stats["cases"] += 1
                stats["findings"] += 1
                _keep(work, findings, target, int(index), json.loads(why))
        finished = any(ln == f"ok {current}" or ln.startswith(f"found {current} ") for ln in lines)
        if proc.returncode == 0 and not hung:
            break
        if current < next_case:  # died before its first case: a broken worker, not a finding
            raise SystemExit(f"{target} worker failed to start (rc {proc.returncode})")
        if not finished:
            stats["cases"] += 1
            stats["hangs" if hung else "crashes"] += 1
            why = "hang" if hung else f"killed by signal {-proc.returncode}"
            _keep(work, findings, target, current, why)
        next_case = current + 1
    stats["leftovers"] = sorted(
        str(p.relative_to(work))
        for p in work.rglob("*")
        if p.is_file() and not OWN_FILES.match(p.name)
    )
    return stats


def _keep(work: Path, findings: Path, target: str, index: int, why: str) -> None:
    """Copies the case input to ``findings/`` with a note of what went wrong."""
    findings.mkdir(parents=True, exist_ok=True)
    for case in work.glob("case.*"):
        shutil.copy(case, findings / f"{target}-{index}{''.join(case.suffixes)}")
    (findings / f"{target}-{index}.why.txt").write_text(why)
    print(f"  finding: {target} case {index}: {why.splitlines()[0][:200] if why else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="total cases over all targets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--targets", default=",".join(SHARES), help="comma-separated subset")
    parser.add_argument("--findings", default="fuzz-findings", help="where failing inputs go")
    parser.add_argument("--json", help="also write the summary as JSON to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seed-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.start, args.stop, args.seed, Path(args.seed_dir))
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(SHARES))
    if unknown or args.cases <= 0:
        parser.error(f"unknown targets {unknown}" if unknown else "--cases must be positive")
    total_share = sum(SHARES[t] for t in targets)
    counts = {t: max(1, round(args.cases * SHARES[t] / total_share)) for t in targets}
    findings = Path(args.findings).absolute()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as seeds:
        make_seeds(Path(seeds))
        seeded = time.monotonic()
        results = {}
        for target in targets:
            t0 = time.monotonic()
            results[target] = run_target(target, counts[target], args, Path(seeds), findings)
            results[target]["seconds"] = round(time.monotonic() - t0, 1)
    elapsed = time.monotonic() - seeded
    total = {
        k: sum(r[k] for r in results.values())
        for k in ("cases", "crashes", "hangs", "findings", "harness_errors")
    }
    leftovers = [f"{t}: {f}" for t, r in results.items() for f in r["leftovers"]]
    summary = {
        "cases": total["cases"],
        "cases_per_s": round(total["cases"] / elapsed, 1),
        "crashes": total["crashes"],
        "hangs": total["hangs"],
        "tracebacks_or_unclear_errors": total["findings"],
        "files_left_behind": leftovers,
        "harness_errors": total["harness_errors"],
        "seconds": round(time.monotonic() - began, 1),
        "seed_seconds": round(seeded - began, 1),
        "targets": results,
    }
    print(
        f"{'target':10} {'cases':>7} {'s':>7} {'cases/s':>8} {'crash':>6} {'hang':>5} {'found':>6}"
    )
    for t, r in results.items():
        rate = r["cases"] / r["seconds"] if r["seconds"] else 0.0
        print(
            f"{t:10} {r['cases']:7d} {r['seconds']:7.1f} {rate:8.1f} {r['crashes']:6d} "
            f"{r['hangs']:5d} {r['findings']:6d}"
        )
    print(json.dumps({k: v for k, v in summary.items() if k != "targets"}))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    bad = total["crashes"] + total["hangs"] + total["findings"] + len(leftovers)
    bad += total["harness_errors"]
    print("fuzz campaign: " + (f"{bad} problem(s), inputs in {findings}" if bad else "no failure"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
