#!/usr/bin/env python3
"""Fuzzes `mlacc.runtime.load` (and running what loads) with mutated `.mlacc` files.

    python test/fuzz/fuzz_artifact.py --examples 2000 [--seed N]

Every outcome must be a clean run or an `mlacc.MlaccError`; anything else is a bug.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

LAST = Path("fuzz-last-artifact.mlacc")
SEED_SAMPLES = ("torch_ops", "latent_attention", "grouped_moe")

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "reference",
            "forward",
            "float32",
            "int64",
            "mla.attention",
            "torch.aten.mm",
            "plan.json",
            "",
            "?",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


def seed_artifacts() -> list[bytes]:
    """Valid artifacts to mutate (compiled once per run)."""
    import tempfile

    from mlacc.backends.testing import compile_sample

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SEED_SAMPLES:
            out.append(
                compile_sample(name, "reference").save(Path(tmp) / f"{name}.mlacc").read_bytes()
            )
    return out


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*prefix, i))
    return found


def _set(node: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = node
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return node


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = draw(st.sampled_from(seeds))
    if draw(st.booleans()):  # structured: edit a JSON member inside a valid zip
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        name = draw(st.sampled_from(["manifest.json", "payload/plan.json"]))
        doc = json.loads(members[name])
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(_paths(doc)))
            doc = _set(doc, path, draw(JSON_VALUES), draw(st.booleans()))
        members[name] = json.dumps(doc).encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, blob in members.items():
                zf.writestr(n, blob)
        return buf.getvalue()
    raw = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "splice"]))
        i = draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del raw[i:]
        elif kind == "insert":
            raw[i:i] = draw(st.binary(max_size=16))
        else:
            other = draw(st.sampled_from(seeds))
            raw[i:] = other[draw(st.integers(0, len(other) - 1)) :]
    return bytes(raw)


def check(data: bytes) -> None:
    """Loads and runs `data` as an artifact; only success or MlaccError are acceptable."""
    import mlacc
    from mlacc.runtime.synthetic import synthetic_inputs

    LAST.write_bytes(data)
    try:
        exe = mlacc.runtime.load(LAST)
        for entry, signature in exe.entry_points.items():
            exe.run(entry, *synthetic_inputs(signature["inputs"]))
    except mlacc.MlaccError as err:
        assert str(err).strip(), "an error must say what is wrong"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    seeds = seed_artifacts()

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=20_000,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated(seeds))
    def fuzz(data: bytes) -> None:
        check(data)

    fuzz()
    LAST.unlink(missing_ok=True)
    print(f"fuzz_artifact: {args.examples} cases from {len(seeds)} seed artifacts, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
