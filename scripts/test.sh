#!/usr/bin/env bash
# The whole test suite: sets up .venv if needed, then ruff, lit (parallel) and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check .
echo "== lit" && lit -sv test/
echo "== pytest" && python -m pytest -q -n "${MLACC_TEST_JOBS:-2}" test/python "$@"
