"""The sm_90 cubins a `triton` artifact carries: compiled by Triton's own JIT at compile time,
digest-checked at load, and placed in Triton's cache under the key the JIT looks up, so that
a launch on the GPU loads them instead of compiling (checked here without a GPU: the JIT
compiles for sm_90 through a driver stand-in and Triton's compile listener reports cache
hits)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tool_helpers import assert_one_error_line, run_tool

import mlacc
from mlacc.backends.testing import compile_sample
from mlacc.backends.triton import sm90
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
    """Binaries go into Triton's cache only for the Triton version, GPU target, ptxas and
    compile options they were compiled with."""
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
    # options this Triton derives otherwise (PTXAS_OPTIONS, TRITON_FORCE_DISABLE_FP_FUSION...
    # at its import) hash otherwise than the compile's
    other = [({**entry, "options_hash": "0" * 64}, files) for entry, files in binaries]
    status = seed_cache(package, record, other, GPUTarget("cuda", 90, 32))
    n = len(binaries)
    assert status == (
        f"0 of {n} sm_90 binaries in Triton's cache (0 placed, 0 already there); {n} not used: "
        "compile options differ from the compile's (Triton/ptxas settings)"
    )


def test_a_changed_binary_is_one_error(artifact: Path, tmp_path) -> None:
    art = read_artifact(artifact)
    name = art.manifest["backend"]["triton"]["binaries"]["kernels"][0]["files"]["cubin"]
    art.payload[name] = art.payload[name][:-1] + bytes([art.payload[name][-1] ^ 1])
    path = art.save(tmp_path / "changed.mlacc")
    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):
        mlacc.runtime.load(path)
    proc = run_tool("mlacc", "run", str(path))
    assert_one_error_line(proc, "mlacc", f"binary '{name}' does not match its recorded sha256")


# Replays the recorded launches of the plan (argv[2]) through Triton's JIT for sm_90, in a
# process other than the compile's, three times, each on an empty Triton cache: as it is (every
# kernel compiles), after placing the artifact's (argv[1]) binaries, and after placing them
# with a Triton setting the compile did not have. Prints the listener's cache hits, the SASS of
# what was compiled or loaded, and whether a GPU's binder (device 0) of the JIT survived.
SEED_PROBE = r"""
import json, os, re, subprocess, sys, tempfile
from pathlib import Path
import triton
from triton import knobs
from mlacc.backends.triton.sm90 import spec_call
from mlacc.runtime.artifact import read_artifact
from mlacc.runtime.executors.triton_binaries import checked_binaries, compile_only, seed_cache
from mlacc.runtime.executors.triton_sources import checked_sources, load_kernel_package

art = read_artifact(sys.argv[1])
specs = json.loads(Path(sys.argv[2]).read_text())
record = art.manifest["backend"]["triton"]["binaries"]
package = load_kernel_package(checked_sources(art.payload, art.manifest))
binaries = checked_binaries(art.payload, record)
tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"

def sass(group):
    cubin = next(path for name, path in group.items() if name.endswith(".cubin"))
    text = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True).stdout
    return [re.sub(r"^/\*[0-9a-f]+\*/", "", l.strip()).strip() for l in text.splitlines()]

seen = []
knobs.compilation.listener = lambda *, src, metadata_group, cache_hit, **_: seen.append(
    [src.name, cache_hit, sass(metadata_group)])
gpu_binder = object()
first = spec_call(package, specs[0])[0]
first.device_caches[0] = gpu_binder

def replay(seed):
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp()
    seen.clear()
    with compile_only(90) as session:
        status = seed_cache(package, record, binaries, session.target) if seed else None
        for spec in specs:
            session.warmup(*spec_call(package, spec))
    return status, list(seen)

_, fresh = replay(False)
status, seeded = replay(True)
os.environ["DISABLE_LLVM_OPT"] = "1"
other, refused = replay(True)
print(json.dumps({
    "binaries": len(binaries), "launches": len(specs), "status": status, "other": other,
    "fresh": [[n, h] for n, h, _ in fresh], "seeded": [[n, h] for n, h, _ in seeded],
    "refused": [h for _, h, _ in refused],
    "same_sass": [len(a[2]) > 10 and a[2] == b[2] for a, b in zip(fresh, seeded)],
    "gpu_binder_kept": first.device_caches.get(0) is gpu_binder,
    "stand_in_left": sorted(first.device_caches),
}))
"""


def test_the_jit_loads_the_carried_binaries(tmp_path, monkeypatch) -> None:
    """In another process than the compile's: every launch of the plan, compiled by the JIT on
    an empty cache, compiles (a miss); after `seed_cache` placed the artifact's binaries every
    one is a cache hit, and what it loads has the SASS the JIT builds itself; with a Triton
    setting the compile did not have (``DISABLE_LLVM_OPT``), none is placed and all compile."""
    specs: list[dict] = []
    record_launches = sm90.step_launches

    def recording(*args, **kwargs):
        found, skipped = record_launches(*args, **kwargs)
        specs.extend(json.loads(spec) for spec in found)
        return found, skipped

    monkeypatch.setattr(sm90, "step_launches", recording)
    path = compile_sample(SAMPLE, "triton", sm90_check=True).save(tmp_path / "a.mlacc")
    (tmp_path / "specs.json").write_text(json.dumps(specs))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", SEED_PROBE, str(path), str(tmp_path / "specs.json")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    n = out["binaries"]
    assert n >= 4 and out["launches"] >= n
    placed = f"{n} of {n} sm_90 binaries in Triton's cache ({n} placed, 0 already there)"
    assert out["status"] == placed
    assert [hit for _, hit in out["fresh"]] == [False] * n, out["fresh"]
    assert [hit for _, hit in out["seeded"]] == [True] * n, out["seeded"]
    assert [name for name, _ in out["seeded"]] == [name for name, _ in out["fresh"]]
    assert out["same_sass"] == [True] * n
    assert out["other"] == (
        f"0 of {n} sm_90 binaries in Triton's cache (0 placed, 0 already there); {n} not used: "
        "Triton settings differ from the compile's (DISABLE_LLVM_OPT)"
    )
    assert out["refused"] == [False] * n
    # compile-only work neither reuses nor clears the JIT's binder of a real GPU
    assert out["gpu_binder_kept"] and out["stand_in_left"] == [0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.__setitem__("kernels", None), "no list 'kernels'"),
        (lambda b: b["kernels"].__setitem__(0, "x"), "entry 0 is malformed: not an object"),
        (lambda b: b["kernels"][0].pop("sha256"), "'sha256' does not give each file's digest"),
        (lambda b: b["kernels"][0]["files"].pop("json"), "does not name exactly a json and a"),
        (
            lambda b: b["kernels"][0]["files"].__setitem__("cubin", "plan.json"),
            "a file lies outside 'binaries/'",
        ),
        (lambda b: b["kernels"][0].__setitem__("attrs", {}), "'attrs' is not a list of"),
    ],
)
def test_a_malformed_binaries_record_is_one_error(artifact: Path, tmp_path, mutate, message):
    art = read_artifact(artifact)
    mutate(art.manifest["backend"]["triton"]["binaries"])
    path = art.save(tmp_path / "malformed.mlacc")
    with pytest.raises(ArtifactError, match=re.escape(message)):
        mlacc.runtime.load(path)
    assert_one_error_line(run_tool("mlacc", "run", str(path)), "mlacc", message)
    inspect = run_tool("mlacc", "inspect", str(path), "--section", "sm90")
    assert_one_error_line(inspect, "mlacc", message)
