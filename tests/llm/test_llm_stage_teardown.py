"""A generation stage closes the LLM clients it opened when its worker stops (`MapStage.teardown`).

Without it, every Ray actor of a generation run left its aiohttp session open, and aiohttp said
so on the actor's stderr ("Unclosed client session") when the actor exited. Against OpenAIStub
(a real HTTP server): the engine's worker class on its own, then `pipeline run`, where Ray Data
retires the actor and its logs are kept in the output.
"""

from __future__ import annotations

import tarfile

import pyarrow as pa
import pytest
from openai_stub import OpenAIStub

from pipeline.config import build_stage
from pipeline.execute import _MapWorker
from pipeline.records import DROP_REASON, MESSAGE_TYPE
from tests.cli import cli

QUESTIONS = ["Name three primary colours.", "What is the capital of Peru?", "Sort 3, 1, 2."]


@pytest.fixture
def stub():
    with OpenAIStub() as s:
        yield s


def test_a_worker_closes_its_stage_clients_when_it_stops(stub, tmp_path):
    llms = {"teacher": {"backend": "vllm_server", "model": "stub-model", "url": stub.url + "/v1"}}
    stage = build_stage("respond", {}, index=1, output_dir=tmp_path, llms=llms)
    stage.prepare()
    worker = _MapWorker(stage)
    batch = pa.table({"id": ["a", "b", "c"], "messages": pa.array([[{"role": "user", "content": q}] for q in QUESTIONS], MESSAGE_TYPE)})
    out = worker(batch)
    assert out.column(DROP_REASON).to_pylist() == [None, None, None]
    assert [m[-1]["content"] for m in out.column("messages").to_pylist()] == [q[::-1] + " #0" for q in QUESTIONS]
    session = stage.client._http
    assert not session.closed  # open for the worker's next batch
    del worker  # what Ray Data does when it retires the actor
    assert session.closed


def test_a_generation_run_leaves_no_client_session_open(stub, tmp_path, shared_data):
    config = tmp_path / "c.yaml"
    config.write_text(f"""\
input: {{format: jsonl, paths: ["{shared_data / 'seeds' / 'self_instruct' / 'seed_tasks.jsonl'}"], limit: 12}}
output: {tmp_path / 'out'}
llms:
  teacher: {{backend: vllm_server, model: stub-model, url: "{stub.url}/v1"}}
stages:
  - respond: {{overwrite: true}}
""")
    run = cli("run", str(config), timeout=300)
    assert run.returncode == 0, run.stderr
    assert len(stub.bodies) == 12  # every row was answered by the stub

    [archive] = (tmp_path / "out" / "logs").glob("run-*/ray.tar.gz")
    with tarfile.open(archive) as logs:
        texts = {m.name: logs.extractfile(m).read().decode("utf-8", "replace") for m in logs.getmembers() if m.isfile()}
    respond_actor = [name for name, text in texts.items() if ":actor_name:MapWorker(MapBatches(_MapWorker))" in text]
    assert respond_actor  # the actor's own log is there to be read
    assert [name for name, text in texts.items() if "Unclosed client session" in text] == []
