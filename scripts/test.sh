#!/usr/bin/env bash
# Set up everything (the project's venv and the CPU vLLM server's own venv), then run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh test
bash scripts/setup_vllm_cpu.sh
exec .venv/bin/python -m pytest -p no:cacheprovider -q -rs --durations=15 "$@"
