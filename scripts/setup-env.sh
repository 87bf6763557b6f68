#!/usr/bin/env bash
# Creates .venv (if needed) and installs mlacc with its test extra and the example plug-in.
# Re-installs only when pyproject.toml files change. Usage: scripts/setup-env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.mlacc-installed
want="$(cat pyproject.toml test/plugins/mlacc-example-backend/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (torch 2.13 CPU, torch-mlir, mlacc) ..." >&2
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
  # torch first, pinned: the CPU build on disk; a looser spec would pull a CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -m pip install -q -e ".[test]" -e test/plugins/mlacc-example-backend \
    2>&1 | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c "import mlacc, torch_mlir, mlacc_example_backend" \
    || { echo "setup failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
