"""`pipeline eval --vllm-url`: base and tuned scored through a real vLLM CPU server that serves the adapter
as a LoRA, against the same eval on the Hugging Face model with the PEFT adapter.

Both paths send lm-eval the same token ids (the side's own tokenizer, greedy decoding, float32), so the
scores must be equal: held-out exact match and GSM8K by generation, MMLU by the prompt's logprobs.
The adapter leaves out `lm_head` (the facts test trains it): vLLM's prompt logprobs are wrong with an
lm_head LoRA (docs/training.md, Evaluation), and the eval refuses log-likelihood tasks for one. The
server's context is the tiny model's (2048), as the HF path's: lm-eval left-truncates a prompt to the
context, and the tiny tokenizer makes MMLU prompts long.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import test_eval as facts  # the facts run, its training flags and the CLI runner of the HF eval's e2e

ROOT = Path(__file__).resolve().parents[2]
TRAIN = [a if not a.startswith("lora.target_modules") else "lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"
         for a in facts.TRAIN]
TASKS = ["--tasks", "held_out,gsm8k,mmlu", "--limit", "3", "--max-new-tokens", "8"]


def scores(folder: Path) -> dict:
    result = json.loads((folder / "eval.json").read_text())
    return {t["task"]: {side: (t[side]["value"], t[side]["stderr"], t[side]["n"]) for side in ("base", "tuned")}
            for t in result["tasks"]}


@pytest.mark.slow
@pytest.mark.shared_data
def test_eval_through_vllm_with_the_lora_equals_the_hf_path(tmp_path, shared_data, vllm_venv):
    from generators.factory import parse_llm_config, server_process

    venv = vllm_venv
    run, model = facts.facts_run(tmp_path, rows=120)
    facts.pipeline("finetune", str(run), *TRAIN)
    adapter = run / "finetune" / "adapter"
    benchmarks = ["--benchmarks-dir", str(shared_data / "benchmarks")]
    config = parse_llm_config({
        "backend": "vllm_server", "model": str(model), "venv": str(venv), "cpu": True, "dtype": "float32",
        "max_model_len": 2048, "startup_timeout_s": 300, "max_restarts": 0,
        "server_args": ["--enable-lora", "--lora-modules", f"facts={adapter}", "--max-lora-rank", "16"],
    })
    with server_process(config) as server:  # stopped by the process group it started
        url = f"{server.url}/v1"
        via_vllm = facts.pipeline("eval", str(model), "--adapter", str(adapter), *TASKS, *benchmarks,
                                  "--vllm-url", url, "--out", str(tmp_path / "vllm"))
        other = tmp_path / "other-adapter"
        shutil.copytree(adapter, other)
        unserved = facts.pipeline("eval", str(model), "--adapter", str(other), *TASKS, *benchmarks,
                                  "--vllm-url", url, "--out", str(tmp_path / "bad"), check=False)
    on_hf = facts.pipeline("eval", str(model), "--adapter", str(adapter), *TASKS, *benchmarks,
                           "--out", str(tmp_path / "hf"))

    assert unserved.returncode == 2
    assert unserved.stderr.strip().splitlines() == [(
        f"error: eval: the vLLM server at {server.url} serves no LoRA from {other} (it serves {model}, facts); "
        f"start it with --enable-lora --lora-modules NAME={other}")]

    models = json.loads((tmp_path / "vllm" / "eval.json").read_text())["models"]
    assert models["tuned"].endswith(f"on vLLM {server.url} as facts") and models["base"].endswith(f"as {model}")
    vllm, hf = scores(tmp_path / "vllm"), scores(tmp_path / "hf")
    assert vllm["held_out"]["tuned"][0] >= 0.6 and vllm["held_out"]["base"][0] == 0  # the LoRA was applied
    for task in ("held_out", "gsm8k", "mmlu"):
        for side in ("base", "tuned"):
            assert vllm[task][side] == pytest.approx(hf[task][side], abs=1e-9), (task, side, vllm, hf)
    assert "| held_out | exact_match,none | 3 |" in via_vllm.stdout and "| held_out" in on_hf.stdout


@pytest.mark.shared_data
def test_a_server_that_cannot_be_reached_is_one_line(tmp_path, shared_data):
    from tiny_models.llama import build_tiny_model

    model = build_tiny_model(tmp_path / "model", ["a tiny vocabulary"], vocab_size=300)
    done = facts.pipeline("eval", str(model), "--tasks", "mmlu", "--benchmarks-dir", str(shared_data / "benchmarks"),
                          "--vllm-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "out"), check=False)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: eval: cannot list the models of the vLLM server at http://127.0.0.1:9: ")
    bad = facts.pipeline("eval", str(model), "--tasks", "mmlu", "--benchmarks-dir", str(shared_data / "benchmarks"),
                         "--vllm-url", "localhost:8000", "--out", str(tmp_path / "out"), check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: eval: --vllm-url must be http(s)://host:port (or .../v1), not 'localhost:8000'"]


@pytest.mark.shared_data
def test_an_lm_head_adapter_with_a_loglikelihood_task_is_one_line(tmp_path, shared_data):
    """vLLM's prompt logprobs are wrong for an lm_head LoRA (docs/training.md): refused before the server is asked."""
    from tiny_models.llama import build_tiny_model

    model = build_tiny_model(tmp_path / "model", ["a tiny vocabulary"], vocab_size=300)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "target_modules": ["q_proj", "lm_head"]}))
    args = ["eval", str(model), "--adapter", str(adapter), "--benchmarks-dir", str(shared_data / "benchmarks"),
            "--vllm-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "out")]
    done = facts.pipeline(*args, "--tasks", "gsm8k,mmlu", check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: eval: mmlu through vLLM: the adapter trains lm_head, and vLLM's prompt logprobs with an lm_head LoRA "
        "are wrong (docs/training.md, Evaluation); evaluate these tasks without --vllm-url"]
    generation_only = facts.pipeline(*args, "--tasks", "gsm8k", check=False)  # passes the check, then finds no server
    assert generation_only.returncode == 2 and "cannot list the models" in generation_only.stderr
