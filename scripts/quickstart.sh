#!/usr/bin/env bash
# Set up the environment, then run the quickstart pipeline offline on the sample corpus we ship.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh test
exec .venv/bin/pipeline run configs/quickstart.yaml "$@"
