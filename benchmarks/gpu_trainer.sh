#!/usr/bin/env bash
# The side-by-side GPU benchmark against TRL (benchmarks/gpu_trainer.py) as one command.
#
#   benchmarks/gpu_trainer.sh prepare   here, once: the wheels the GPU image lacks (TRL, datasets and its two
#                                       small needs, pydantic for our config; pytest for gpu_session.sh, in
#                                       pytest/), then what prepare-data makes, into .gpu-wheels/ (ignored by
#                                       git; about 7 MiB)
#   benchmarks/gpu_trainer.sh prepare-data   the same folder's data alone, no download: the benchmark's rows and
#                                       the shared-data files the GPU tests read (shared-data/)
#   bash benchmarks/gpu_trainer.sh      on the GPU machine, with .gpu-wheels carried beside the tree: installs
#                                       the wheels offline into a folder of its own, then runs the benchmark
#                                       under a total timeout; extra arguments go to gpu_trainer.py
#                                       (e.g. --tiny for a one-minute smoke run, --only sft)
#
# PYTHON picks the interpreter (default python3, the GPU image's; .venv/bin/python to prepare); GPU_TRAINER_DIR the folder of wheels and
# rows (default .gpu-wheels); GPU_TRAINER_TIMEOUT_S the total limit (default 470, under the 8 minutes asked).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${GPU_TRAINER_DIR:-.gpu-wheels}

if [ "${1:-}" = prepare ] || [ "${1:-}" = prepare-data ]; then
  PYTHON=${PYTHON:-.venv/bin/python}
  mkdir -p "$DIR"
  if [ "$1" = prepare ]; then
    # The GPU image's Python is 3.12 on x86-64. TRL 1.16 asks transformers >= 4.56.2 (5.17 there, 5.25 here)
    # and datasets >= 4.7; datasets 5.x fails in Dataset.from_list with any pyarrow before 26 (PicklingError on
    # MonthDayNano while fingerprinting), 4.8.5 works with pyarrow 22 to 26, whichever the image has.
    download=("$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    "${download[@]}" -d "$DIR" trl==1.16.0 datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 \
      pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
    # In a folder of their own: gpu_session.sh installs them only where the image has no pytest (its list has
    # one, with plugins that another pytest could break); the benchmark needs none of them.
    "${download[@]}" -d "$DIR/pytest" pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 pygments==2.21.0 \
      pytest-timeout==2.4.0
  fi
  "$PYTHON" benchmarks/gpu_trainer.py --prepare "$DIR/gpu_trainer_rows.json.gz"
  # What the GPU tests' fixtures read (tests/conftest.py's shared_data wants the README; the tiny model and its
  # chats come from the seed tasks), 114 KB of the shared data, which does not travel.
  SHARED=${PIPELINE_SHARED_DATA:-../shared/data}
  for file in README.md seeds/self_instruct/seed_tasks.jsonl; do
    install -D -m 644 "$SHARED/$file" "$DIR/shared-data/$file"
  done
  du -sh "$DIR"
  exit 0
fi
PYTHON=${PYTHON:-python3}

if [ ! -f "$DIR/gpu_trainer_rows.json.gz" ]; then
  echo "gpu_trainer.sh: $DIR/gpu_trainer_rows.json.gz is missing: run 'benchmarks/gpu_trainer.sh prepare' here and carry $DIR" >&2
  exit 2
fi
if compgen -G "$DIR/*.whl" >/dev/null; then
  SITE=$(mktemp -d /tmp/gpu-trainer-site.XXXXXX)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$DIR"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
# The benchmark stops starting trainers 30 s before the limit; the limit is the backstop.
LIMIT=${GPU_TRAINER_TIMEOUT_S:-470}
status=0
timeout --kill-after=10 "$LIMIT" "$PYTHON" benchmarks/gpu_trainer.py --data "$DIR/gpu_trainer_rows.json.gz" \
  --budget-s $((LIMIT - 30)) "$@" || status=$?
[ "$status" = 124 ] && echo "gpu_trainer.sh: stopped at the ${LIMIT} s limit" >&2
exit "$status"
