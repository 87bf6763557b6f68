# lit configuration for mlacc's FileCheck tests: `lit test/` (or `cmake --build build --target
# check-mlacc`). Finds `mlacc-opt` and `filecheck` itself, so no lit.site.cfg.py is needed.
# ruff: noqa: F821  (lit injects `config` and `lit_config`)

import os
import shutil
import subprocess
import sys
from pathlib import Path

import lit.formats

config.name = "mlacc"
config.test_format = lit.formats.ShTest(execute_external=False)  # lit's shell: `not` is built in
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.test_source_root, "Output")
# pytest's tree, fuzz harnesses, plug-in packages and inputs that are not tests themselves.
config.excludes = ["python", "fuzz", "plugins", "Inputs"]

repo = Path(config.test_source_root).parent
# Where the tools live: next to this Python (a venv's bin/), the repo's .venv, then PATH.
candidate_dirs = [Path(sys.executable).parent, repo / ".venv" / "bin"]


def find_tool(name):
    for directory in candidate_dirs:
        path = directory / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        lit_config.fatal(
            f"'{name}' not found next to {sys.executable}, in {repo / '.venv' / 'bin'} or on "
            "PATH; install the package (pip install -e '.[test]') or activate its venv"
        )
    return found


tools = {name: find_tool(name) for name in ("mlacc-opt", "filecheck")}
lit_config.note("using " + ", ".join(tools.values()))

# Tests spell the tools by name: put their directories first on PATH (no textual substitution,
# which would also rewrite paths such as test/mlacc-opt/...).
tool_dirs = list(dict.fromkeys(os.path.dirname(p) for p in tools.values()))
config.environment["PATH"] = os.pathsep.join([*tool_dirs, os.environ.get("PATH", "")])
for var in ("HOME", "TMPDIR", "LANG", "LC_ALL"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
config.environment.pop("MLACC_DEBUG", None)

config.substitutions.append(("%mlacc_opt", tools["mlacc-opt"]))
config.substitutions.append(("%filecheck", tools["filecheck"]))
config.substitutions.append(("%python", sys.executable))


def has_cuda():
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


if has_cuda():
    config.available_features.add("cuda")
