"""The `mlacc` command: each subcommand's happy path and its bad-input paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tool_helpers import assert_one_error_line, run_tool

from mlacc.backends.testing import sample_text


def test_compile_run_inspect(tmp_path: Path) -> None:
    src = tmp_path / "layer.mlir"
    src.write_text(sample_text("deepseek_v3_layer"))
    out = tmp_path / "layer.mlacc"
    proc = run_tool(
        "mlacc", "compile", str(src), "-o", str(out), "--target", "reference", "--random-weights"
    )
    assert proc.returncode == 0, proc.stderr
    assert "compiled" in proc.stdout and out.is_file()

    proc = run_tool("mlacc", "run", str(out), "-o", str(tmp_path / "y.safetensors"))
    assert proc.returncode == 0, proc.stderr
    assert "ran 'forward' on target 'reference'" in proc.stdout
    assert "out0: float32[1, 8, 64]" in proc.stdout

    manifest = json.loads(run_tool("mlacc", "inspect", str(out)).stdout)
    assert manifest["target"] == "reference" and "forward" in manifest["entry_points"]
    mlir = run_tool("mlacc", "inspect", str(out), "--section", "mlir").stdout
    # the default pipeline decomposed the attention (no KV cache here: un-absorbed form)
    assert '"mla.decoupled_attention"' in mlir and '"moe.router"' in mlir
    weights = run_tool("mlacc", "inspect", str(out), "--section", "weights").stdout
    assert "attn.wkv_b.weight  float32[128, 32]" in weights
    plan = json.loads(run_tool("mlacc", "inspect", str(out), "--section", "plan").stdout)
    assert any(s["op"] == "mla.decoupled_attention" for s in plan["functions"]["forward"]["steps"])


def test_demo_runs() -> None:
    proc = run_tool("mlacc", "demo")
    assert proc.returncode == 0, proc.stderr
    assert "target      sim" in proc.stdout
    assert "simulated   datacenter-npu (8 chip(s) x 4 cores at 1.5 GHz)" in proc.stdout
    assert "us/token" in proc.stdout and "tokens/s" in proc.stdout
    # 32 + 8 latent values vs 4 heads x (16 + 8) keys + 4 x 16 values for MHA
    assert (
        "40 values per token per layer (latent) vs 160 for MHA with the same heads" in proc.stdout
    )


def test_demo_tokens_do_not_depend_on_the_target() -> None:
    def generated(*args: str) -> str:
        proc = run_tool("mlacc", "demo", "--tokens", "4", *args)
        assert proc.returncode == 0, proc.stderr
        return next(line for line in proc.stdout.splitlines() if "generated" in line).split("(")[0]

    assert generated("--target", "reference") == generated("--device", "h100-like")


def test_sim_compile_run_report_trace_roofline(tmp_path: Path) -> None:
    out = tmp_path / "v3.mlacc"
    proc = run_tool(
        "mlacc",
        "compile",
        "deepseek-v3-tiny",
        "-o",
        str(out),
        "--device",
        "h100-like",
        "--batch",
        "2",
        "--prompt-len",
        "8",
        "--cache-len",
        "64",
    )
    assert proc.returncode == 0, proc.stderr
    files = [tmp_path / n for n in ("r.json", "t.json", "roof.png")]
    proc = run_tool(
        "mlacc",
        "run",
        str(out),
        "--entry",
        "prefill",
        "--json",
        str(files[0]),
        "--trace",
        str(files[1]),
        "--roofline",
        str(files[2]),
    )
    assert proc.returncode == 0, proc.stderr
    assert "ran 'prefill' on target 'sim'" in proc.stdout
    assert "Simulated on h100-like" in proc.stdout and "mla.latent_attention" in proc.stdout
    report = json.loads(files[0].read_text())
    assert report["calls"][0]["entry"] == "prefill" and report["calls"][0]["batch"] == 2
    trace = json.loads(files[1].read_text())
    tracks = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"}
    assert any("tensor" in t for t in tracks) and any("dma in" in t for t in tracks)
    assert files[2].read_bytes().startswith(b"\x89PNG")


def test_timing_only_full_size_compile_and_run(tmp_path: Path) -> None:
    out = tmp_path / "v3.mlacc"
    proc = run_tool(
        "mlacc",
        "compile",
        "deepseek-v3",
        "--target",
        "sim",
        "--timing-only",
        "-o",
        str(out),
        "--prompt-len",
        "4",
        "--cache-len",
        "256",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_tool("mlacc", "run", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "(timing only)" in proc.stdout and "timing only: kernels were timed" in proc.stdout
    assert "KV cache: 576 latent values/token/layer vs 41.0K MHA" in proc.stdout
    assert "at batch 1, context 256" in proc.stdout  # --cache-len reached the capture


def test_sim_errors(tmp_path: Path) -> None:
    out = tmp_path / "x.mlacc"
    proc = run_tool("mlacc", "compile", "deepseek-v3-tiny", "-o", str(out), "--device", "tpu-v9")
    assert_one_error_line(proc, "mlacc", "unknown device 'tpu-v9'")
    assert not out.exists()
    proc = run_tool(
        "mlacc",
        "compile",
        "deepseek-v3-tiny",
        "-o",
        str(out),
        "--device",
        "edge-npu",
        "--fp8",
        cwd=tmp_path,
    )
    assert_one_error_line(proc, "mlacc", "has no fp8 tensor-engine rate")
    assert not out.exists() and (tmp_path / "mlacc-repro-sim-lowering.mlir").is_file()
    missing = tmp_path / "no-such-dir" / "x.mlacc"
    proc = run_tool("mlacc", "compile", "deepseek-v3-tiny", "-o", str(missing))
    assert_one_error_line(proc, "mlacc", f"{missing}: No such file or directory")
    proc = run_tool("mlacc", "compile", "x.mlir", "-o", str(out), "--batch", "2")
    assert_one_error_line(proc, "mlacc", "--batch and --prompt-len apply to built-in models")
    ref = tmp_path / "ref.mlacc"
    src = tmp_path / "ok.mlir"
    src.write_text(sample_text("torch_ops"))
    assert (
        run_tool(
            "mlacc",
            "compile",
            str(src),
            "-o",
            str(ref),
            "--target",
            "reference",
            "--random-weights",
        ).returncode
        == 0
    )
    proc = run_tool("mlacc", "run", str(ref), "--trace", str(tmp_path / "t.json"))
    assert_one_error_line(proc, "mlacc", "target 'reference' reports no costs")


def test_compile_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text(
        'func.func @f(%x: i32) {\n  %0 = "mla.rms_norm"(%x) : (i32) -> i32\n  return\n}\n'
    )
    out = tmp_path / "out.mlacc"
    proc = run_tool("mlacc", "compile", str(bad), "-o", str(out), "--target", "reference")
    assert_one_error_line(proc, "mlacc", f"{bad}:2:8")
    assert not out.exists()

    src = tmp_path / "ok.mlir"
    src.write_text(sample_text("torch_ops"))
    proc = run_tool("mlacc", "compile", str(src), "-o", str(out), "--target", "no-such-target")
    assert_one_error_line(proc, "mlacc", "unknown target 'no-such-target'", "reference")
    proc = run_tool("mlacc", "compile", str(src), "-o", str(out), "--target", "reference")
    assert_one_error_line(proc, "mlacc", "no data for weight")
    proc = run_tool(
        "mlacc", "compile", str(tmp_path / "missing.mlir"), "-o", str(out), "--target", "reference"
    )
    assert_one_error_line(proc, "mlacc", "no such file")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.mlacc")]


def test_unsupported_op_names_op_location_and_targets(tmp_path: Path) -> None:
    src = tmp_path / "fp8.mlir"
    src.write_text(sample_text("fp8_linear"))
    proc = run_tool(
        "mlacc",
        "compile",
        str(src),
        "-o",
        str(tmp_path / "o.mlacc"),
        "--target",
        "example-cpu",
        "--random-weights",
    )
    assert_one_error_line(
        proc,
        "mlacc",
        "op 'fp8.quantize' is not supported by target 'example-cpu' (supported by: llvm, "
        "reference, sim, triton)",
        "fp8_linear.py:1:1",
    )


def test_run_and_inspect_errors(tmp_path: Path, torch_ops_artifact: Path) -> None:
    proc = run_tool("mlacc", "run", str(tmp_path / "nope.mlacc"))
    assert_one_error_line(proc, "mlacc", "no such artifact file")
    junk = tmp_path / "junk.mlacc"
    junk.write_bytes(os.urandom(256))
    for cmd in (["run"], ["inspect"]):
        proc = run_tool("mlacc", *cmd, str(junk))
        assert_one_error_line(proc, "mlacc", "not an mlacc artifact")
    proc = run_tool("mlacc", "run", str(torch_ops_artifact), "--entry", "decode")
    assert_one_error_line(proc, "mlacc", "no entry point 'decode'")


def test_backends_lists_targets_and_broken_plugins(tmp_path: Path) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mlacc.backends]\nbroken = no_such_module:Backend\n")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env_path}"
    try:
        proc = run_tool("mlacc", "backends")
    finally:
        os.environ["PYTHONPATH"] = env_path
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert "ok" in lines["reference"] and "ok" in lines["example-cpu"]
    assert "BROKEN" in lines["broken"] and "No module named 'no_such_module'" in lines["broken"]


def test_capture_then_mlacc_opt(tmp_path: Path) -> None:
    out = tmp_path / "tiny.mlir"
    proc = run_tool("mlacc", "capture", "deepseek-v3-tiny", "-o", str(out), "--cache-len", "32")
    assert proc.returncode == 0, proc.stderr
    assert "entry points: forward, prefill, decode, verify, draft, draft_prefill" in proc.stdout
    opt = run_tool("mlacc-opt", str(out), "--canonicalize", "--cse")
    assert opt.returncode == 0, opt.stderr
    # 3 layers in forward, prefill, decode and verify; the MTP layer in draft and draft_prefill
    assert opt.stdout.count('"mla.attention"') == 3 * 4 + 2 and "torch.operator" not in opt.stdout


def test_compile_builtin_model_and_run(tmp_path: Path) -> None:
    out = tmp_path / "tiny.mlacc"
    proc = run_tool("mlacc", "compile", "deepseek-v3-tiny", "-o", str(out), "--target", "reference")
    assert proc.returncode == 0, proc.stderr
    assert "forward: exported" in proc.stderr  # progress lines
    proc = run_tool("mlacc", "run", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "out0: float32[1, 16, 512]" in proc.stdout


def test_compile_with_a_paged_cache(tmp_path: Path) -> None:
    out = tmp_path / "paged.mlacc"
    args = ["--target", "reference", "--cache-len", "64", "--cache-block-size", "16", "--report"]
    proc = run_tool("mlacc", "compile", "deepseek-v3-tiny", "-o", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    assert "paged: 5 blocks of 16 tokens" in proc.stdout  # 1 scratch + 4 for one sequence
    proc = run_tool("mlacc", "inspect", str(out), "--section", "manifest")
    manifest = json.loads(proc.stdout)
    assert manifest["kv_cache"]["layout"] == "paged"
    names = [i["name"] for i in manifest["entry_points"]["decode"]["inputs"]]
    assert names[:4] == ["tokens", "positions", "block_table", "cache.0"]
    proc = run_tool(
        "mlacc", "compile", "deepseek-v3-tiny", "-o", str(out), "--cache-block-size", "0"
    )
    assert_one_error_line(proc, "cache_block_size must be positive")


def test_full_size_model_needs_timing_only(tmp_path: Path) -> None:
    out = tmp_path / "v3.mlacc"
    proc = run_tool("mlacc", "compile", "deepseek-v3", "-o", str(out), "--target", "reference")
    assert_one_error_line(proc, "mlacc", "meta device", "timing_only=True")
    assert not out.exists()


def test_corrupt_pt2_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip archive")
    proc = run_tool(
        "mlacc", "compile", str(bad), "-o", str(tmp_path / "o.mlacc"), "--target", "reference"
    )
    assert_one_error_line(proc, "mlacc", "cannot load the exported program")
    assert "Traceback" not in proc.stderr


def test_record_routing_then_compile_with_it(tmp_path: Path) -> None:
    """`mlacc run --record-routing` writes the experts a functional run hit; `mlacc compile
    --routing FILE` costs a timing-only artifact with them; bad specs are one error line."""
    art, routing = tmp_path / "t.mlacc", tmp_path / "routing.json"
    proc = run_tool("mlacc", "compile", "deepseek-v3-tiny", "-o", str(art), "--device", "h100-like")
    assert proc.returncode == 0, proc.stderr
    proc = run_tool(
        "mlacc", "run", str(art), "--entry", "prefill", "--record-routing", str(routing)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"routing: {routing}" in proc.stdout
    assert json.loads(routing.read_text())["format"] == "mlacc-routing/1"
    timed = tmp_path / "timed.mlacc"
    proc = run_tool(
        "mlacc",
        "compile",
        "deepseek-v3-tiny",
        "-o",
        str(timed),
        "--timing-only",
        "--routing",
        str(routing),
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_tool("mlacc", "run", str(timed), "--record-routing", str(routing))
    assert_one_error_line(proc, "mlacc", "--record-routing needs a sim artifact compiled with")
    proc = run_tool(
        "mlacc", "compile", "deepseek-v3-tiny", "-o", str(timed), "--routing", "zipf:-1"
    )
    assert_one_error_line(proc, "mlacc", "zipf needs a positive exponent")


def test_device_set_compiles_for_a_changed_preset(tmp_path: Path) -> None:
    """`--device-set` changes keys of the preset: two nodes of 4 chips with a network; the
    run's report names the derived device and its chips; bad settings are one error line."""
    out = tmp_path / "cluster.mlacc"
    settings = [
        "chips=8",
        "chips_per_node=4",
        "network.bandwidth_gbs=25",
        "network.latency_ns=3000",
        "energy.pj_per_byte.network=30.0",
    ]
    args = [a for s in settings for a in ("--device-set", s)]
    proc = run_tool(
        "mlacc", "compile", "deepseek-v3-tiny", "-o", str(out), "--device", "h100-like", *args
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_tool("mlacc", "run", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Simulated on h100-like+" in proc.stdout
    assert "132 cores x 8 chips" in proc.stdout
    assert "nodes of 4 chips, network 25.0 GB/s" in proc.stdout
    for bad, message in (
        (["chips"], "device setting 'chips': expected KEY=VALUE"),
        (["my key=1"], "KEY of letters, digits, _ and -"),
        (["chips=many"], "'many' is not a TOML value"),
        (["chips=12", "chips_per_node=8"], "'chips_per_node' must divide 'chips' (12)"),
    ):
        proc = run_tool(
            "mlacc",
            "compile",
            "deepseek-v3-tiny",
            "-o",
            str(out.with_suffix(".bad")),
            *[a for s in bad for a in ("--device-set", s)],
        )
        assert_one_error_line(proc, "mlacc", message)
        assert not out.with_suffix(".bad").exists()
    proc = run_tool(
        "mlacc",
        "compile",
        "deepseek-v3-tiny",
        "-o",
        str(out),
        "--target",
        "reference",
        "--device-set",
        "chips=2",
    )
    assert_one_error_line(proc, "mlacc", "--device-set is for the sim target")
