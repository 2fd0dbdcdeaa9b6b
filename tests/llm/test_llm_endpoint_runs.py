"""`pipeline run` against a remote vLLM server (the real CPU server of conftest, tiny random model):
the OpenAI `/v1` URL works, a wrong model or a closed port is refused by `validate` and by `run` before
Ray starts (exit 2), and a server that starts failing most requests mid-run stops the run (exit 1)
instead of ending "done".
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from fault_proxy import FaultProxy

from tests.ports import free_port
from tests.cli import cli

pytestmark = pytest.mark.slow
STAGE = "01-respond"


def seed_records(shared_data: Path, n: int, answered: bool) -> list[dict]:
    """The first `n` Self-Instruct seed tasks as Alpaca records, with or without their answer."""
    lines = (shared_data / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()[:n]
    tasks = [json.loads(line) for line in lines]
    return [{"id": t["id"], "instruction": t["instruction"], **({"output": t["instances"][0]["output"]} if answered else {})}
            for t in tasks]  # fmt: skip


def run_respond(tmp_path: Path, llm: dict, records: list[dict], command: str = "run") -> tuple[subprocess.CompletedProcess, Path]:
    """`pipeline run` (or another command) of one respond stage (which answers the records without an answer)."""
    out = tmp_path / "out"
    data = tmp_path / "instructions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = {
        "name": "endpoint",
        "input": {"format": "jsonl", "paths": [str(data)]},
        "output": {"path": str(out)},
        "llms": {"teacher": {"backend": "vllm_server", "timeout_s": 30, **llm}},
        "stages": [{"respond": {"max_tokens": 8}}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = cli(command, str(path), timeout=600)
    return proc, out


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def reported_done(proc: subprocess.CompletedProcess) -> bool:
    return any(line.startswith("done") for line in proc.stderr.splitlines())


def test_openai_v1_url_answers_the_rows(tmp_path, shared_data, vllm_server, vllm_server_config):
    model = vllm_server_config["model"]
    questions = seed_records(shared_data, 6, answered=False)
    answered = seed_records(shared_data, 8, answered=True)[6:]  # pass through unanswered, so the run keeps rows
    proc, out = run_respond(tmp_path, {"model": model, "url": vllm_server.url + "/v1/"}, questions + answered)
    assert proc.returncode == 0 and reported_done(proc), proc.stderr[-3000:]

    rows = {r["id"]: r for r in pq.read_table(out / "data").to_pylist()}
    rejects = out / "rejects" / STAGE
    dropped = {r["id"]: r for r in (pq.read_table(rejects).to_pylist() if rejects.exists() else [])}
    # The random model rarely stops before max_tokens: a cut answer is dropped as truncated, but answered.
    assert {r["reason"] for r in dropped.values()} <= {"response_truncated"}
    assert sorted(rows | dropped) == sorted(r["id"] for r in questions + answered)
    for q in questions:
        r = rows.get(q["id"]) or dropped[q["id"]]
        assert r["messages"][0]["content"] == q["instruction"]
        assert r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"].strip()
        assert json.loads(r["meta"])["responder"] == model and r["generated_by"] == model
    for a in answered:
        assert rows[a["id"]]["messages"][-1]["content"] == a["output"]


@pytest.mark.parametrize("case", ["wrong model", "closed port"])
def test_server_that_cannot_serve_the_model_is_refused_before_ray_starts(case, tmp_path, shared_data, vllm_server, vllm_server_config):
    model = vllm_server_config["model"]
    url = vllm_server.url if case == "wrong model" else f"http://127.0.0.1:{free_port()}"
    llm = {"model": "Qwen/Qwen2.5-7B-Instruct" if case == "wrong model" else model, "url": url + "/v1"}
    records = seed_records(shared_data, 6, answered=False)
    expected = (f"{url} does not serve model 'Qwen/Qwen2.5-7B-Instruct'; it serves: {model}" if case == "wrong model"
                else f"cannot reach {url}/v1/models: Connection refused")  # fmt: skip

    validate, _ = run_respond(tmp_path, llm, records, command="validate")
    assert validate.returncode == 2, validate.stderr[-3000:]
    [line] = error_lines(validate)
    assert line.startswith(f"error: {tmp_path / 'config.yaml'}:") and line.endswith(f": stages[0].respond.llm: llm 'teacher': {expected}")

    proc, out = run_respond(tmp_path, llm, records)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert error_lines(proc) == [line]
    assert "starting a local Ray" not in proc.stderr  # refused before Ray's start-up, not after it
    assert not out.exists()


def test_server_failing_most_requests_mid_run_stops_the_run(tmp_path, shared_data, vllm_server, vllm_server_config):
    """After 8 good answers, 90% of requests get a 500: the 26th failure of the last 50 ends the run."""
    with FaultProxy(vllm_server.url, error_rate=0.9, delay_rate=0.0, healthy_requests=8, seed=1) as proxy:
        llm = {"model": vllm_server_config["model"], "url": proxy.url + "/v1", "max_retries": 0, "concurrency": 4}
        proc, out = run_respond(tmp_path, llm, seed_records(shared_data, 64, answered=False))

    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proxy.counts["forwarded"] >= 8 and proxy.counts["error_500"] >= 26
    [line] = error_lines(proc)
    assert line.startswith(f"error: stage {STAGE}: 26 of the last ") and line.endswith(
        f"requests to {proxy.url} failed; the first: HTTP 500: injected fault")
    assert not reported_done(proc) and not (out / "stats.json").exists()
