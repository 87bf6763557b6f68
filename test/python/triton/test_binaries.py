"""The sm_90 cubins a `triton` artifact carries: compiled by Triton's own JIT at compile time,
digest-checked at load, and placed in Triton's cache under the key the JIT looks up, so that
a launch on the GPU loads them instead of compiling (checked here without a GPU: the JIT
compiles for sm_90 through a driver stand-in and Triton's compile listener reports cache
hits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlacc
from mlacc.backends.testing import compile_sample
from mlacc.backends.triton.sm90 import summary
from mlacc.runtime.artifact import read_artifact
from mlacc.runtime.errors import ArtifactError
from mlacc.runtime.executors.triton_binaries import BINARY_DIR, checked_binaries, seed_cache
from mlacc.runtime.executors.triton_sources import checked_sources, load_kernel_package

SAMPLE = "deepseek_v3_layer"  # mla.rms_norm and moe.router run as Triton kernels


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """`SAMPLE` compiled for `triton` with the sm_90 check (and so its cubins), saved."""
    art = compile_sample(SAMPLE, "triton", sm90_check=True)
    return art.save(tmp_path_factory.mktemp("art") / "layer.mlacc")


def test_each_compiled_kernel_is_carried(artifact: Path, capsys) -> None:
    art = read_artifact(artifact)
    info = art.manifest["backend"]["triton"]
    record, report = info["binaries"], info["sm90"]
    assert record["triton"] == report["triton"] and record["target"]["arch"] == 90
    kernels = [e["kernel"] for e in record["kernels"]]
    assert sorted(kernels) == sorted(r["kernel"] for r in report["launches"])
    assert {"_rms_norm_kernel", "_router_kernel"} <= set(kernels)
    carried = {name for name in art.payload if name.startswith(BINARY_DIR)}
    assert carried == {name for e in record["kernels"] for name in e["files"].values()}
    assert len(checked_binaries(art.payload, record)) == len(kernels)
    assert f"{len(kernels)} cubins carried (Triton {record['triton']})" in summary(report, record)
    from mlacc.tools.mlacc_main import _print_sm90

    _print_sm90(art)
    assert f"cubins carried: {len(kernels)} (" in capsys.readouterr().out


def test_no_binaries_when_asked_not_to() -> None:
    art = compile_sample(SAMPLE, "triton", sm90_check=True, sm90_binaries=False)
    assert art.manifest["backend"]["triton"]["binaries"] is None
    assert art.manifest["backend"]["triton"]["sm90"]["launches"]
    assert not [name for name in art.payload if name.startswith(BINARY_DIR)]


def test_interpreter_runs_do_not_use_them(artifact: Path) -> None:
    exe = mlacc.runtime.load(artifact)
    assert exe.executor.binaries_status == "not used: the kernels run under the Triton interpreter"


def test_another_triton_or_gpu_does_not_use_them(artifact: Path) -> None:
    """Binaries go into Triton's cache only for the Triton version, GPU target and ptxas they
    were compiled with."""
    from triton.backends.compiler import GPUTarget

    art = read_artifact(artifact)
    record = dict(art.manifest["backend"]["triton"]["binaries"])
    binaries = checked_binaries(art.payload, record)
    package = load_kernel_package(checked_sources(art.payload, art.manifest))
    status = seed_cache(package, record, binaries, GPUTarget("cuda", 100, 32))
    assert status == "not used: compiled for cuda sm_90 (warp 32), this is cuda sm_100 (warp 32)"
    status = seed_cache(package, {**record, "triton": "3.0.0"}, binaries, GPUTarget("cuda", 90, 32))
    assert status.startswith("not used: compiled with Triton 3.0.0, this is ")
    status = seed_cache(
        package, {**record, "backend": "ptxas 1.0-90"}, binaries, GPUTarget("cuda", 90, 32)
    )
    assert status == "not used: compiled with another ptxas than this Triton's"
    assert seed_cache(package, None, [], GPUTarget("cuda", 90, 32)) == "none carried"


def test_a_changed_binary_is_one_error(artifact: Path, tmp_path) -> None:
    art = read_artifact(artifact)
    name = art.manifest["backend"]["triton"]["binaries"]["kernels"][0]["files"]["cubin"]
    art.payload[name] = art.payload[name][:-1] + bytes([art.payload[name][-1] ^ 1])
    path = art.save(tmp_path / "changed.mlacc")
    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):
        mlacc.runtime.load(path)
    proc = subprocess.run(
        [sys.executable, "-m", "mlacc.tools.mlacc_main", "run", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"binary '{name}' does not match its recorded sha256" in proc.stderr


# Compiles the sample (recording the plan's launches), then launches each again through
# Triton's JIT for sm_90 twice, each time on an empty Triton cache: once as it is, once after
# placing the artifact's binaries in it. Prints the listener's cache hits of both.
ROUND_TRIP = """
import json, os, sys, tempfile
from triton import knobs
from mlacc.backends.testing import compile_sample
from mlacc.backends.triton import sm90
from mlacc.runtime.executors.triton_binaries import checked_binaries, compile_only, seed_cache
from mlacc.runtime.executors.triton_sources import checked_sources, load_kernel_package

specs, record_launches = [], sm90.step_launches
def recording(*args, **kwargs):
    found, skipped = record_launches(*args, **kwargs)
    specs.extend(json.loads(spec) for spec in found)
    return found, skipped
sm90.step_launches = recording
art = compile_sample(sys.argv[1], "triton", sm90_check=True)
record = art.manifest["backend"]["triton"]["binaries"]
package = load_kernel_package(checked_sources(art.payload, art.manifest))
binaries = checked_binaries(art.payload, record)
hits = []
knobs.compilation.listener = lambda *, src, cache_hit, **_: hits.append([src.name, cache_hit])
out = {"binaries": len(binaries), "launches": len(specs)}
for seeded in (False, True):
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp()
    hits.clear()
    with compile_only(90) as session:
        if seeded:
            out["status"] = seed_cache(package, record, binaries, session.target)
        for spec in specs:
            session.warmup(*sm90.spec_call(package, spec))
    out["seeded" if seeded else "empty"] = list(hits)
print(json.dumps(out))
"""


def test_the_jit_loads_the_carried_binaries() -> None:
    """Every launch of the plan, compiled by the JIT on an empty cache, compiles (a miss);
    after `seed_cache` placed the artifact's binaries, every one is a cache hit."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, SAMPLE],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    n = out["binaries"]
    assert n >= 4 and out["launches"] >= n
    assert (
        out["status"]
        == f"{n} of {n} sm_90 binaries in Triton's cache ({n} placed, 0 already there)"
    )
    assert [hit for _, hit in out["empty"]] == [False] * n, out["empty"]
    assert [hit for _, hit in out["seeded"]] == [True] * n, out["seeded"]
    assert sorted(name for name, _ in out["seeded"]) == sorted(name for name, _ in out["empty"])
