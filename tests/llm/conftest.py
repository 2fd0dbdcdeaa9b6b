"""Fixtures of the generation-backend tests: a tiny local model and one real vLLM CPU server per session.

The vLLM server is slow to start (30-60 s on 2 cores), so every test that needs it shares the one
started here. Its virtual environment comes from $PIPELINE_VLLM_VENV or <repo>/.venv-vllm (made by
scripts/setup_vllm_cpu.sh); without it the tests skip with a reason, except under
PIPELINE_REQUIRE_VLLM=1 (CI), where a missing vLLM is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def vllm_python() -> Path:
    venv = Path(os.environ.get("PIPELINE_VLLM_VENV", ROOT / ".venv-vllm"))
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, shared_data) -> Path:
    """A random-weight Llama (head_dim 64) with a BPE tokenizer trained on the Self-Instruct seed tasks."""
    from generators.self_instruct import load_seed_tasks
    from tiny_models.llama import build_tiny_model

    tasks = load_seed_tasks(shared_data / "seeds/self_instruct/seed_tasks.jsonl")
    texts = [t.instruction for t in tasks] + [i["output"] for t in tasks for i in t.instances if i.get("output")]
    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), texts)


@pytest.fixture(scope="session")
def vllm_server_config(tiny_model) -> dict:
    python = vllm_python()
    if not python.exists():
        reason = f"vLLM venv not found at {python.parent.parent}; run scripts/setup_vllm_cpu.sh or set PIPELINE_VLLM_VENV"
        if os.environ.get("PIPELINE_REQUIRE_VLLM") == "1":
            pytest.fail(reason + " (PIPELINE_REQUIRE_VLLM=1)")
        pytest.skip(reason)
    return {
        "backend": "vllm_server",
        "model": str(tiny_model),
        "python": str(python),
        "cpu": True,
        "dtype": "float32",
        "max_model_len": 512,
        "startup_timeout_s": 300,
        "timeout_s": 30,
    }


@pytest.fixture(scope="session")
def vllm_server(vllm_server_config):
    """One managed vLLM CPU server for the session; tests that kill it leave the watchdog to restart it."""
    from generators.factory import parse_llm_config, server_process

    with server_process(parse_llm_config(vllm_server_config)) as server:
        yield server


@pytest.fixture
def taken_port():
    """A port another process holds (listening), as one that took a picked port before vLLM bound it."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]
