#!/usr/bin/env bash
# The main job: sets up .venv if needed, then compiles and runs the embedded tiny DeepSeek-V3.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
exec .venv/bin/mlacc demo "$@"
