"""`mlacc`: compile, run, inspect and demo compiled models; list targets.

Every failure is one `mlacc: error: ...` line and a non-zero exit; set MLACC_DEBUG=1 for a
traceback of internal errors.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
EXIT_INTERNAL = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mlacc` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("mlacc: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        return _report(err)


def _report(err: Exception) -> int:
    from mlacc.runtime.errors import MlaccError

    if isinstance(err, MlaccError):
        first, *notes = str(err).strip().splitlines() or [type(err).__name__]
        print(f"mlacc: error: {first}", file=sys.stderr)
        for note in notes:  # "note: ..." lines: where the reproducer is, how to run it
            print(note, file=sys.stderr)
        return EXIT_ERROR
    if isinstance(err, OSError) and err.filename:  # an output path that cannot be written
        print(f"mlacc: error: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return EXIT_ERROR
    if os.environ.get("MLACC_DEBUG"):
        raise err
    print(
        f"mlacc: internal error: {type(err).__name__}: {_one_line(err)} "
        "(set MLACC_DEBUG=1 for a traceback)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlacc", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(metavar="COMMAND")

    c = sub.add_parser("compile", help="compile a model into a .mlacc artifact")
    c.add_argument(
        "input",
        help="a built-in model (deepseek-v3-tiny, ...), a checkpoint folder (Hugging Face or "
        "the public DeepSeek-V3 layout), a .pt2 or an .mlir file",
    )
    c.add_argument("-o", "--output", required=True, help="artifact to write (.mlacc)")
    c.add_argument("--target", default="sim", help="target name (see `mlacc backends`)")
    c.add_argument("--pipeline", default="default", help="'default', 'none' or a pass pipeline")
    c.add_argument("--fp8", action="store_true", help="add FP8 block quantization")
    c.add_argument("--weights", help=".safetensors file with the module's weights")
    c.add_argument(
        "--random-weights",
        action="store_true",
        help="use deterministic random weights (for trying things out)",
    )
    c.add_argument(
        "--timing-only",
        action="store_true",
        help="compile without weight data (a checkpoint folder: reads config.json only)",
    )
    c.add_argument("--print-ir-after-all", metavar="DIR", help="write the IR after every step")
    c.add_argument(
        "--device",
        help="sim target: a device preset (edge-npu, datacenter-npu, h100-like, h200-like) or TOML",
    )
    c.add_argument(
        "--device-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sim target: change one key of the device (repeatable; dotted keys, TOML values), "
        "e.g. --device-set chips=16 --device-set chips_per_node=8 "
        "--device-set network.bandwidth_gbs=50 ... (the device is named <preset>+<hash>)",
    )
    c.add_argument(
        "--routing",
        help="sim target: expert routing to cost when timing-only: uniform (default), zipf:S, "
        "or a histogram file from `mlacc run --record-routing`",
    )
    c.add_argument("--cache-len", type=int, help="KV cache length for prefill/decode")
    c.add_argument(
        "--cache-block-size", type=int, help="page the latent KV cache in blocks of N tokens"
    )
    c.add_argument(
        "--batch", type=int, help="built-in models, folders: largest batch served (default 1)"
    )
    c.add_argument(
        "--prompt-len",
        type=int,
        help="built-in models, folders: prefill chunk in tokens (default 16)",
    )
    c.add_argument(
        "--report", action="store_true", help="print the KV-cache and weight memory report"
    )
    c.add_argument(
        "--tokenizer",
        help="tokenizer folder to embed for `mlacc generate` (default: a checkpoint folder's own)",
    )
    c.set_defaults(handler=_cmd_compile)

    cap = sub.add_parser("capture", help="capture a model to graph-level MLIR (for mlacc-opt)")
    cap.add_argument("input", help="a built-in model (deepseek-v3-tiny, ...) or a .pt2 file")
    cap.add_argument("-o", "--output", required=True, help=".mlir file to write")
    cap.add_argument("--cache-len", type=int, help="KV cache length for prefill/decode")
    cap.set_defaults(handler=_cmd_capture)

    r = sub.add_parser("run", help="run a compiled artifact")
    r.add_argument("artifact")
    r.add_argument("--entry", help="entry point (default: the artifact's default)")
    r.add_argument("--inputs", help=".safetensors file with inputs named arg0, arg1, ...")
    r.add_argument("-o", "--output", help="write the outputs to this .safetensors file")
    r.add_argument("--json", metavar="FILE", help="simulating targets: write the report as JSON")
    r.add_argument(
        "--trace", metavar="FILE", help="simulating targets: write a Chrome/Perfetto trace"
    )
    r.add_argument(
        "--roofline", metavar="PNG", help="simulating targets: plot the ops on a roofline"
    )
    r.add_argument("--top", type=int, default=15, help="ops listed in the report table")
    r.add_argument(
        "--record-routing",
        metavar="FILE",
        help="sim target, with weights: write the tokens each expert received, per layer (JSON "
        "for `mlacc compile --routing FILE`)",
    )
    r.set_defaults(handler=_cmd_run)

    i = sub.add_parser("inspect", help="print an artifact's manifest or extract a section")
    i.add_argument("artifact")
    i.add_argument(
        "--section",
        default="manifest",
        choices=["manifest", "mlir", "weights", "payload", "plan", "fallbacks", "sm90"],
        help="what to print (default: manifest)",
    )
    i.set_defaults(handler=_cmd_inspect)

    b = sub.add_parser("backends", help="list installed targets (and why one fails to load)")
    b.set_defaults(handler=_cmd_backends)

    g = sub.add_parser("generate", help="generate text with a compiled causal LM")
    g.add_argument("artifact")
    g.add_argument("--prompt", required=True, help="the text to continue")
    g.add_argument(
        "--tokenizer",
        help="tokenizer folder (tokenizer.json, save_pretrained; default: the artifact's own)",
    )
    g.add_argument("--max-new-tokens", type=int, default=32, help="tokens to generate")
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    g.add_argument("--top-k", type=int, help="sample from the k most likely tokens")
    g.add_argument("--top-p", type=float, help="sample from the smallest set of mass p")
    g.add_argument("--seed", type=int, help="makes sampling reproducible")
    g.add_argument(
        "--ignore-eos", action="store_true", help="keep going past the end-of-sequence token"
    )
    g.set_defaults(handler=_cmd_generate)

    d = sub.add_parser("demo", help="compile a tiny DeepSeek-V3 and generate a few tokens")
    d.add_argument("--target", default="sim", help="target to run on")
    d.add_argument("--device", default="datacenter-npu", help="sim target: device preset or TOML")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--tokens", type=int, default=8, help="tokens to generate")
    d.set_defaults(handler=_cmd_demo)
    return p


def _cmd_compile(args: argparse.Namespace) -> int:
    weights: Any = args.weights
    options = {"device": args.device} if args.device else {}
    if args.routing:
        options["routing"] = args.routing
    if args.random_weights:
        weights = _random_weights_for(args.input)
    if args.device_set:
        options["device"] = _derived_device(args)
    return _compile(args, weights, options)


def _derived_device(args: argparse.Namespace) -> Any:
    """`--device` (or the sim default) with the `--device-set` changes, as a `Device`."""
    from mlacc.backends.sim.lowering import DEFAULT_DEVICE, resolve_device
    from mlacc.runtime.errors import InputError
    from mlacc.runtime.sim.device import derive_device, parse_assignments

    if args.target != "sim":
        raise InputError(
            f"--device-set is for the sim target (this compile is for '{args.target}')"
        )
    base = resolve_device(args.device or DEFAULT_DEVICE)
    # the name marks lowered IR as this device's: distinct settings, distinct names
    digest = hashlib.sha256("\n".join(args.device_set).encode()).hexdigest()[:8]
    overrides = {"name": f"{base.name}+{digest}", **parse_assignments(args.device_set)}
    return derive_device(base, overrides)


def _compile(args: argparse.Namespace, weights: Any, options: dict) -> int:
    import mlacc

    start = time.perf_counter()
    art = mlacc.compile(
        args.input,
        _example_args(args),
        target=args.target,
        pipeline=args.pipeline,
        fp8=args.fp8,
        weights=weights,
        timing_only=args.timing_only,
        print_ir_after_all=args.print_ir_after_all,
        cache_len=args.cache_len,
        cache_block_size=args.cache_block_size,
        progress=_progress,
        tokenizer=args.tokenizer,
        **options,
    )
    art.save(args.output, progress=_ByteProgress("writing weights"))
    elapsed = time.perf_counter() - start
    w = art.manifest["weights"]
    print(
        f"compiled {args.input} for '{args.target}' in {elapsed:.2f} s -> {args.output} "
        f"({len(art.manifest['entry_points'])} entry point(s), {w['count']} weights, "
        f"{w['bytes'] / 2**20:.1f} MiB)"
    )
    if args.report:
        from mlacc.report import MemoryReport

        fields = {k: v for k, v in art.manifest["memory"].items() if k != "cache_bytes"}
        for line in MemoryReport(**fields).lines():
            print(f"  {line}")
    return 0


def _example_args(args: argparse.Namespace) -> tuple | None:
    """Example inputs of `--batch`/`--prompt-len` for a built-in model (None: its default)."""
    if args.batch is None and args.prompt_len is None:
        return None
    import torch

    from mlacc.frontend.models import CONFIGS
    from mlacc.runtime.errors import InputError

    folder = Path(args.input).is_dir()
    if args.input not in CONFIGS and not folder:
        raise InputError("--batch and --prompt-len apply to built-in models and folders only")
    for flag, value in (("--batch", args.batch), ("--prompt-len", args.prompt_len)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be positive, got {value}")
    # full-size built-in models are on the meta device (timing only); a folder's is filled
    # from its shards, so its graph must make its tensors on the CPU
    device = "cpu" if args.input.endswith("-tiny") or folder else "meta"
    shape = (args.batch or 1, args.prompt_len or 16)
    return (torch.zeros(shape, dtype=torch.int64, device=device),)


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


class _ByteProgress:
    """A progress bar on stderr for `(done_bytes, total_bytes, item)` callbacks: redrawn in
    place on a terminal, a line per tenth otherwise (logs); silent for small totals."""

    MIN_BYTES = 64 * 2**20
    WIDTH = 30

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.shown = -1

    def __call__(self, done: int, total: int, _item: str) -> None:
        if total < self.MIN_BYTES:
            return
        tenth = done * 10 // total
        if not self.tty and tenth == self.shown:
            return
        self.shown = tenth
        filled = done * self.WIDTH // total
        rate = done / max(time.perf_counter() - self.start, 1e-9) / 2**30
        line = (
            f"  {self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{done / 2**30:.2f}/{total / 2**30:.2f} GiB {rate:.2f} GiB/s"
        )
        if self.tty:
            end = "\n" if done >= total else ""
            print(f"\r{line}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def _cmd_capture(args: argparse.Namespace) -> int:
    from mlacc.dialects import make_context
    from mlacc.dialects.parsing import module_text
    from mlacc.fileio import write_atomic
    from mlacc.model_input import import_model

    start = time.perf_counter()
    with make_context():
        imported = import_model(
            args.input, None, None, cache_len=args.cache_len, progress=_progress
        )
        text = module_text(imported.module)
    write_atomic(Path(args.output), text)
    print(
        f"captured {args.input} in {time.perf_counter() - start:.1f} s -> {args.output} "
        f"({len(text) / 2**20:.1f} MiB of MLIR, entry points: "
        f"{', '.join(imported.entry_points) or 'from the input'})"
    )
    return 0


def _random_weights_for(path: str) -> dict:
    import mlacc
    from mlacc.runtime.synthetic import synthetic_weights

    probe = mlacc.compile(path, target="reference", pipeline="none", timing_only=True)
    return synthetic_weights(probe.manifest["weights"]["tensors"])


def _cmd_run(args: argparse.Namespace) -> int:
    import torch

    import mlacc

    exe = mlacc.load(args.artifact)
    entry = args.entry or exe.default_entry
    if entry not in exe.entry_points:
        raise mlacc.runtime.InputError(
            f"no entry point '{entry}' (entry points: {', '.join(exe.entry_points)})"
        )
    timing_only = not exe.manifest.get("weights", {}).get("present", True)
    inputs = _load_inputs(args.inputs, exe.entry_points[entry]["inputs"], meta=timing_only)
    if (args.json or args.trace or args.roofline) and exe.report() is None:
        raise mlacc.runtime.TargetError(
            f"target '{exe.target}' reports no costs (--json, --trace and --roofline need a "
            "simulating target such as sim)"
        )
    if args.roofline:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise mlacc.runtime.MlaccError("--roofline needs matplotlib: pip install matplotlib")
    if args.trace:
        exe.executor.detail = True  # engine-level spans in the trace
    recorder = _routing_recorder(exe, timing_only) if args.record_routing else None
    start = time.perf_counter()
    outputs = exe.run(entry, *inputs)
    elapsed = time.perf_counter() - start
    flat = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    print(f"ran '{entry}' on target '{exe.target}' in {elapsed * 1e3:.1f} ms")
    shown = 4 if len(flat) > 6 else len(flat)  # e.g. decode: logits + one cache per layer
    for i, out in enumerate(flat[:shown]):
        if isinstance(out, torch.Tensor) and out.device.type == "meta":
            print(
                f"  out{i}: {str(out.dtype).removeprefix('torch.')}{list(out.shape)} (timing only)"
            )
        elif isinstance(out, torch.Tensor):
            stats = (
                f"mean {out.float().mean():.4g}, std {out.float().std():.4g}"
                if out.numel() > 1
                else ""
            )
            print(f"  out{i}: {str(out.dtype).removeprefix('torch.')}{list(out.shape)} {stats}")
    if shown < len(flat):
        print(f"  ... {len(flat) - shown} more outputs (out{shown}..out{len(flat) - 1})")
    if args.output:
        from safetensors.torch import save_file

        save_file({f"out{i}": t.contiguous() for i, t in enumerate(flat)}, args.output)
    if recorder is not None:
        recorder.save(args.record_routing)
        print(f"routing: {args.record_routing} ({len(recorder.layers)} MoE layers)")
    report = exe.report()
    if report is not None:
        _write_report(report, args)
    return 0


def _routing_recorder(exe: Any, timing_only: bool) -> Any:
    """A recorder attached to `exe`'s sim interpreter (a functional run on `sim` only)."""
    import mlacc
    from mlacc.runtime.sim.routing import RoutingRecorder

    interpreter = getattr(exe.executor, "interpreter", None)
    if exe.target != "sim" or timing_only or not hasattr(interpreter, "recorder"):
        raise mlacc.runtime.InputError(
            "--record-routing needs a sim artifact compiled with weights (a functional run)"
        )
    interpreter.recorder = RoutingRecorder()
    return interpreter.recorder


def _write_report(report: Any, args: argparse.Namespace) -> None:
    """The simulated cost: a table on stdout and the files asked for."""
    import json

    from mlacc.fileio import write_atomic
    from mlacc.runtime.sim.report import format_table, plot_roofline, report_to_json, write_trace

    print()
    print(format_table(report, top=args.top))
    if args.json:
        write_atomic(Path(args.json), json.dumps(report_to_json(report), indent=1, allow_nan=False))
        print(f"report: {args.json}")
    if args.trace:
        write_trace(report, args.trace)
        print(f"trace: {args.trace} (open in ui.perfetto.dev or chrome://tracing)")
    if args.roofline:
        plot_roofline(report, args.roofline)
        print(f"roofline: {args.roofline}")


def _load_inputs(path: str | None, specs: list[dict], meta: bool = False) -> list:

    from mlacc.runtime.errors import InputError

    if path:
        from safetensors.torch import load_file

        if not Path(path).is_file():
            raise InputError(f"{path}: no such inputs file")
        tensors = load_file(path)
        missing = [s["name"] for s in specs if s["name"] not in tensors]
        if missing:
            raise InputError(f"{path}: no tensor named '{missing[0]}' (inputs are arg0, arg1, ...)")
        return [tensors[s["name"]] for s in specs]
    from mlacc.runtime.synthetic import synthetic_inputs

    return synthetic_inputs(specs, meta=meta)


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from mlacc.runtime.artifact import read_artifact

    art = read_artifact(args.artifact)
    if args.section == "manifest":
        print(json.dumps(art.manifest, indent=2, sort_keys=True))
    elif args.section == "mlir":
        print(art.mlir, end="" if art.mlir.endswith("\n") else "\n")
    elif args.section == "weights":
        tensors = art.manifest.get("weights", {}).get("tensors", {})
        for key, spec in tensors.items():
            present = "" if key in art.weights else "  (no data)"
            print(f"{key}  {spec['dtype']}{spec['shape']}{present}")
    elif args.section == "payload":
        for name, data in sorted(art.payload.items()):
            print(f"{name}  {len(data)} bytes")
    elif args.section == "fallbacks":
        fallbacks = art.manifest.get("backend", {}).get("fallbacks")
        if fallbacks is None:
            print(f"target '{art.target}' records no fallbacks")
        for f in fallbacks or []:
            where = f"  ({', '.join(f['locations'][:2])})" if f.get("locations") else ""
            print(
                f"{f['op']}  x{f['count']} ({f['per_call']} per call, {f['weight_only']} once "
                f"on weights)  {f['kind']}: {f['reason']}{where}"
            )
    elif args.section == "sm90":
        _print_sm90(art)
    else:
        print(json.dumps(art.payload_json("plan.json"), indent=2))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import mlacc
    from mlacc.runtime.errors import InputError
    from mlacc.runtime.text import artifact_tokenizer, generate_text, load_tokenizer

    if args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be positive, got {args.max_new_tokens}")
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    exe = mlacc.load(args.artifact)
    tokenizer = tokenizer or artifact_tokenizer(exe.artifact, args.artifact)
    if "decode" not in exe.entry_points:
        raise InputError(f"{args.artifact} has no decode entry point (not a causal LM)")
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
    print(args.prompt, end="", flush=True)
    result = generate_text(
        exe,
        tokenizer,
        args.prompt,
        args.max_new_tokens,
        on_text=lambda text: print(text, end="", flush=True),
        stop_at_eos=not args.ignore_eos,
        seed=args.seed,
        **sampling,
    )
    print(flush=True)
    print(
        f"{len(result.new_tokens)} tokens in {result.seconds:.2f} s "
        f"({result.tokens_per_second:.1f} tokens/s; prompt {result.prompt_tokens} tokens, "
        f"first token after {result.first_token_seconds * 1e3:.0f} ms) on '{exe.target}'",
        file=sys.stderr,
    )
    return 0


def _print_sm90(art) -> None:
    """The `triton` target's sm_90 register/spill check, a line per kernel config."""
    from mlacc.runtime.executors.triton_binaries import checked_binaries, gpu_name

    report = art.manifest.get("backend", {}).get("triton", {}).get("sm90")
    if report is None:
        print(f"target '{art.target}' records no sm_90 check")
        return
    if "off" in report:
        print(f"sm_90 check off: {report['off']}")
        return
    print(f"{report['arch']} (Triton {report['triton']}): registers and spills per kernel config")
    for r in report["launches"]:
        blocks = " ".join(f"{k}={v}" for k, v in r["blocks"].items())
        # artifacts from before spill_bytes counted any stack frame as a spill
        spill = f"SPILLS {r.get('spill_bytes', r['stack_bytes'])} B" if r["spills"] else "no spills"
        if r["stack_bytes"]:
            spill += f", {r['stack_bytes']} B stack frame"
        print(
            f"{r['kernel']}  [{', '.join(r['ops'])}]  warps={r['num_warps']} "
            f"stages={r['num_stages']} {blocks}  {r['registers']} regs, {spill}, "
            f"{r['shared_bytes']} B shared"
        )
    for s in report["skipped"]:
        what = s.get("kernel") or s.get("op")
        print(f"not checked: {what}: {s['reason']}")
    binaries = art.manifest["backend"]["triton"].get("binaries")
    carried = checked_binaries(art.payload, binaries)
    if carried:
        size = sum(len(data) for _, files in carried for data in files.values())
        print(
            f"cubins carried: {len(carried)} ({size / 2**20:.1f} MiB, Triton "
            f"{binaries.get('triton')}, {gpu_name(binaries.get('target'))}); used at load where "
            "Triton, GPU and settings match"
        )
        for s in binaries.get("not_recorded", []):
            print(f"no cubin carried: {s.get('kernel')}: {s.get('reason')}")
    else:
        print("cubins carried: none (kernels JIT-compile at load)")


def _cmd_backends(args: argparse.Namespace) -> int:
    from mlacc.backends import discover

    for name, status in discover().items():
        if status.cls is None:
            print(f"{name:12s} BROKEN  {status.origin}: {status.error}")
        else:
            print(f"{name:12s} ok      {status.cls.description}  [{status.origin}]")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    import mlacc
    from mlacc.model_input import builtin_model

    name = "deepseek-v3-tiny"
    model = builtin_model(name, seed=args.seed)
    prompt = torch.randint(
        0, model.config.vocab_size, (1, 8), generator=torch.Generator().manual_seed(args.seed)
    )
    options = {"device": args.device} if args.target == "sim" else {}
    start = time.perf_counter()
    art = mlacc.compile(model, (prompt,), target=args.target, cache_len=32, **options)
    compile_s = time.perf_counter() - start
    exe = art.load()
    start = time.perf_counter()
    out = exe.generate(prompt, args.tokens)
    run_s = time.perf_counter() - start
    memory = art.manifest["memory"]  # read off the compiled IR
    latent, mha = memory["cache_values_per_token"], memory["mha_values_per_token"]
    cfg = model.config
    print(
        f"mlacc demo: {name} ({cfg.n_layers} layers: MLA with YaRN RoPE, DeepSeekMoE with "
        f"{cfg.n_routed_experts} experts), random weights"
    )
    print(
        f"  target      {art.target} (pipeline: {art.manifest['pipeline'] or 'none'}, "
        f"entry points: {', '.join(art.manifest['entry_points'])})"
    )
    print(
        f"  weights     {art.manifest['weights']['count']} tensors, "
        f"{art.manifest['weights']['bytes'] / 2**20:.1f} MiB"
    )
    print(f"  compile     {compile_s:.2f} s (capture with torch.export, import, passes, lowering)")
    print(f"  prompt      {prompt[0].tolist()}")
    print(
        f"  generated   {out[0, prompt.shape[1] :].tolist()}  "
        f"({args.tokens} tokens in {run_s:.2f} s wall, greedy)"
    )
    report = exe.report()
    if report is not None:
        device = report.device
        prefill = report.totals("prefill").cycles
        print(
            f"  simulated   {device['name']} ({device['chips']} chip(s) x {device['cores']} cores "
            f"at {device['clock_ghz']:g} GHz): {report.cycles:,.0f} cycles "
            f"({report.seconds() * 1e6:,.1f} us); prefill {prefill:,.0f} cycles, decode "
            f"{report.time_per_token() * 1e6:,.2f} us/token = {report.tokens_per_second():,.0f} "
            "tokens/s"
        )
    print(
        f"  KV cache    {latent} values per token per layer (latent) vs {mha} for MHA with the "
        f"same heads ({mha / latent:.1f}x smaller)"
    )
    if report is not None:
        print(
            "  report      mlacc compile deepseek-v3-tiny -o tiny.mlacc && "
            "mlacc run tiny.mlacc --entry decode"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
