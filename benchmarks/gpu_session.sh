#!/usr/bin/env bash
# Issue 16's whole GPU session as one command: a rented H200 comes for 15 minutes in all, starts included, so
# the trainer's GPU tests and the benchmark against TRL go in one call of about 9 minutes that brings back what
# it measured even when a step fails or runs out of time.
#
#   benchmarks/gpu_trainer.sh prepare   here first: .gpu-wheels/ (wheels, the benchmark's rows, shared-data/)
#   bash benchmarks/gpu_session.sh      on the GPU machine, .gpu-wheels carried beside the tree: the wheels
#                                       installed offline, the GPU tests (at most GPU_TESTS_TIMEOUT_S, default 120),
#                                       then gpu_trainer.sh in the time left of GPU_SESSION_TIMEOUT_S (default
#                                       520), then a summary; logs, junit and figures under $OUT
#   bash benchmarks/gpu_session.sh --cpu   here: the same steps on the CPU (the GPU tests collected and skipped,
#                                       the benchmark in --cpu --tiny), a trial of the path
#
# Other arguments go to gpu_trainer.py (a short second try: --only dpo, --tiny). Exit 0 when the tests and the
# benchmark both succeeded, 1 when either did not, 2 for a missing folder or a wrong argument.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath -m "${GPU_TRAINER_DIR:-.gpu-wheels}")
export PYTHON=${PYTHON:-python3}
TOTAL=${GPU_SESSION_TIMEOUT_S:-520}
TESTS_LIMIT=${GPU_TESTS_TIMEOUT_S:-120}
for limit in "$TOTAL" "$TESTS_LIMIT"; do
  if ! [[ "$limit" =~ ^[1-9][0-9]*$ ]]; then  # `timeout 0` would mean no limit at all
    echo "gpu_session.sh: GPU_SESSION_TIMEOUT_S and GPU_TESTS_TIMEOUT_S must be whole seconds above 0, not '$limit'" >&2
    exit 2
  fi
done
BENCH_ARGS=()
if [ "${1:-}" = --cpu ]; then
  BENCH_ARGS=(--cpu --tiny)
  shift
fi
BENCH_ARGS+=("$@")
if [ ! -f "$DIR/shared-data/seeds/self_instruct/seed_tasks.jsonl" ]; then
  echo "gpu_session.sh: $DIR/shared-data is missing: run 'benchmarks/gpu_trainer.sh prepare' here and carry $DIR" >&2
  exit 2
fi
export OUT=${OUT:-$(mktemp -d /tmp/gpu-session-out.XXXXXX)}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

# (1) The carried wheels, for the tests (pydantic for our config); pytest only where the image has none.
wheels=()
compgen -G "$DIR/*.whl" >/dev/null && wheels+=("$DIR"/*.whl)
if ! "$PYTHON" -c "import pytest" 2>/dev/null && compgen -G "$DIR/pytest/*.whl" >/dev/null; then
  wheels+=("$DIR"/pytest/*.whl)
fi
if [ ${#wheels[@]} -gt 0 ]; then
  SITE=$(mktemp -d /tmp/gpu-session-site.XXXXXX)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${wheels[@]}"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

# (2) The GPU tests: the trainer's (issue 16), and the embeddings' that semdedup, select and the semantic
# contamination pass get on a GPU worker (issue 21); they skip without CUDA. PIPELINE_REQUIRE_SHARED_DATA makes
# missing data a failure.
TESTS=(tests/unit/train/test_packing_attention.py tests/unit/train/test_precision.py
       tests/unit/train/test_training_step.py tests/unit/train/test_dpo_packing.py
       tests/unit/train/test_reference_cache.py tests/unit/test_embeddings.py)
tests_status=0
PIPELINE_SHARED_DATA="$DIR/shared-data" PIPELINE_REQUIRE_SHARED_DATA=1 \
  timeout --kill-after=10 "$TESTS_LIMIT" "$PYTHON" -m pytest -p no:cacheprovider -q -rfEs -k "cuda or gpu" \
  --junitxml="$OUT/gpu_tests.xml" "${TESTS[@]}" >"$OUT/gpu_tests.log" 2>&1 || tests_status=$?
tail -n 40 "$OUT/gpu_tests.log"

# (3) The benchmark in the time left (gpu_trainer.sh installs its wheels again, into a folder of its own).
bench_status=0
LEFT=$((TOTAL - SECONDS - 10))
if [ "$LEFT" -lt 90 ]; then
  echo "gpu_session.sh: ${LEFT} s left of ${TOTAL}: the benchmark was not started" | tee "$OUT/gpu_trainer.log" >&2
  bench_status=1
else
  GPU_TRAINER_DIR="$DIR" GPU_TRAINER_TIMEOUT_S="$LEFT" bash benchmarks/gpu_trainer.sh "${BENCH_ARGS[@]}" \
    >"$OUT/gpu_trainer.log" 2>&1 || bench_status=$?
  tail -n 60 "$OUT/gpu_trainer.log"
fi

# (4) The summary, last, where the device tool's output tail keeps it.
echo
echo "== gpu_session summary (${SECONDS} s; files in $OUT)"
"$PYTHON" - "$OUT/gpu_tests.xml" "$tests_status" "$TESTS_LIMIT" <<'EOF'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

junit, status, limit = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if not junit.exists():
    print(f"tests: no junit (exit {status}{f', stopped at the {limit} s limit' if status in (124, 137) else ''}); "
          "see gpu_tests.log")
    sys.exit()
suite = ET.parse(junit).getroot().find("testsuite")
counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
print(f"tests: exit {status}, {counts['tests']} selected: {passed} passed, {counts['failures']} failed, "
      f"{counts['errors']} errors, {counts['skipped']} skipped")
for case in suite.iter("testcase"):
    for kind in ("failure", "error"):
        bad = case.find(kind)
        if bad is not None:
            print(f"  {kind}: {case.get('name')}: {(bad.get('message') or '').strip()[:200]}")
EOF
echo "benchmark: exit ${bench_status}"
grep -E '^\||ours/TRL|attention auto failed|stopped|failed \(exit' "$OUT/gpu_trainer.log" || true
[ "$tests_status" = 0 ] && [ "$bench_status" = 0 ]
