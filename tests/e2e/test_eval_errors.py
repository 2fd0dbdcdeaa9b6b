"""`pipeline eval`'s user errors: one line on stderr, exit code 2, before any model loads."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cli import cli


def _eval(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return cli("eval", *args, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tiny_models.llama import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", ["a few words to train a tokenizer on"] * 4,
                            vocab_size=300)


def _one_line(done: subprocess.CompletedProcess, expected: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: eval:") and expected in lines[0], done.stderr[-2000:]


def test_unknown_task(model, tmp_path):
    _one_line(_eval(str(model), "--tasks", "mmlu_typo", "--out", str(tmp_path)), "unknown task 'mmlu_typo'")


def test_missing_adapter(model, tmp_path):
    _one_line(_eval(str(model), "--adapter", str(tmp_path / "nope"), "--tasks", "mmlu", "--out", str(tmp_path)),
              "adapter not found")


def test_benchmark_neither_local_nor_reachable(model, tmp_path):
    _one_line(_eval(str(model), "--tasks", "gsm8k", "--benchmarks-dir", str(tmp_path), "--out", str(tmp_path),
                    env={"HF_HUB_OFFLINE": "1"}), "'gsm8k' has no local copy")


def test_held_out_without_a_finetune(model, tmp_path):
    _one_line(_eval(str(model), "--tasks", "held_out", "--out", str(tmp_path)), "held_out needs the adapter")


def test_a_model_folder_without_its_tokenizer(model, tmp_path, shared_data):
    """It was transformers' ValueError as a traceback, once the benchmark was rendered."""
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model / name, bare / name)
    _one_line(_eval(str(bare), "--tasks", "gsm8k", "--benchmarks-dir", str(shared_data / "benchmarks"), "--limit", "2",
                    "--out", str(tmp_path / "out")), f"the tokenizer of model ({bare}): the folder {bare} has no tokenizer files")
