"""An LLM endpoint that cannot work fails loudly: the URL forms users write, the server check in the
stages' check() (so `validate` reports it, and `run` before Ray starts), and the failure window that
stops a client whose requests keep failing; and the LLM stages' option problems are listed by
`pipeline validate` before anything runs.

Against OpenAIStub (a real HTTP server scripted to fail), so each rule is pinned exactly and quickly;
the same paths through `pipeline run` against the real vLLM server are in test_llm_endpoint_runs.py.
"""

from __future__ import annotations

import pytest
from openai_stub import OpenAIStub
from pydantic import ValidationError

from tests.ports import free_port
from generators.client import EndpointFailing, FailureWindow, Request, Response
from generators.factory import make_client
from generators.llm_config import LLMConfig
from pipeline.config import build_stage
from pipeline.errors import UserError
from pipeline.stage import Problem
from tests.cli import cli


@pytest.mark.parametrize("url", ["http://gpu-box:8000", "http://gpu-box:8000/", "http://gpu-box:8000/v1",
                                 "http://gpu-box:8000/v1/", " http://gpu-box:8000/v1 "])  # fmt: skip
def test_url_root_and_openai_v1_forms_reach_the_same_server(url):
    assert LLMConfig(backend="vllm_server", model="m", url=url).url == "http://gpu-box:8000"


def test_url_keeps_a_path_prefix_and_refuses_a_url_without_scheme():
    assert LLMConfig(backend="vllm_server", model="m", url="https://proxy.org/llm/v1").url == "https://proxy.org/llm"
    with pytest.raises(ValidationError, match="url must be http"):
        LLMConfig(backend="vllm_server", model="m", url="gpu-box:8000")


class Outcomes:
    """Feeds a window: '.' a success, 'x' a failure whose error names its position in the whole feed."""

    def __init__(self, window: FailureWindow):
        self.window, self.n = window, 0

    def feed(self, outcomes: str) -> None:
        for o in outcomes:
            self.window.record(Response([], "m") if o == "." else Response.failed("m", f"error {self.n}"))
            self.n += 1


def test_failure_window_stops_at_more_than_the_share_of_the_last_requests():
    feed = Outcomes(FailureWindow(size=50, max_rate=0.5, endpoint="http://h:1")).feed
    feed("x." * 25)  # 25 of 50: half is not more than half
    feed("x")  # the oldest failure left the window: 25 of 50 again
    with pytest.raises(EndpointFailing) as failing:
        feed("x")  # a success left it: 26 of 50
    assert str(failing.value) == "26 of the last 50 requests to http://h:1 failed; the first: error 2"


def test_failure_window_counts_against_its_full_size_and_forgets_old_failures():
    early = Outcomes(FailureWindow(size=50, max_rate=0.5, endpoint="e")).feed
    early("x" * 25)  # a run's first 25 requests all failed: still not more than half of 50
    with pytest.raises(EndpointFailing, match="^26 of the last 26 requests to e failed; the first: error 0$"):
        early("x")
    Outcomes(FailureWindow(size=10, max_rate=0.5, endpoint="e")).feed(("xxxxx" + "." * 10) * 5)  # never 6 in any 10


def test_failure_window_share_bounds_and_one_line_error():
    Outcomes(FailureWindow(size=5, max_rate=1.0, endpoint="e")).feed("x" * 20)  # 1: never stops
    strict = FailureWindow(size=5, max_rate=0.0, endpoint="e")
    strict.record(Response([], "m"))
    with pytest.raises(EndpointFailing) as failing:
        strict.record(Response.failed("m", "HTTP 500: <html>\n  <body>oops</body>\n</html>"))
    assert str(failing.value) == "1 of the last 2 requests to e failed; the first: HTTP 500: <html> <body>oops</body> </html>"
    with pytest.raises(ValidationError):
        LLMConfig(backend="vllm_server", model="m", max_failure_rate=1.5)
    with pytest.raises(ValidationError):
        LLMConfig(backend="vllm_server", model="m", failure_window=0)


@pytest.fixture
def stub():
    with OpenAIStub() as s:
        yield s


def test_client_behind_the_cache_stops_sending_once_its_endpoint_keeps_failing(stub, tmp_path):
    config = {"backend": "vllm_server", "model": "stub-model", "url": stub.url + "/v1", "max_retries": 0,
              "concurrency": 4, "cache_dir": str(tmp_path)}  # fmt: skip
    client = make_client(config)
    # A few failures among many stay the rows' own errors (20 of 100, at most 10 in any 50).
    few = [Request(prompt=f"few {i}") for i in range(100)]
    stub.plan = {r.prompt: ["400"] for r in few[::5]}
    responses = client.generate(few)
    client.close()
    assert [r.error is not None for r in responses] == [i % 5 == 0 for i in range(100)]
    assert all(r.text == f"few {i}"[::-1] + " #0" for i, r in enumerate(responses) if i % 5)

    # A server that fails everything: the 26th failure of the last 50 stops the batch (a new client
    # has sent 26 requests by then), and the requests not yet sent are never sent.
    doomed = [Request(prompt=f"doomed {i}") for i in range(300)]
    stub.plan = {r.prompt: ["500"] for r in doomed}
    sent_before = len(stub.bodies)
    client = make_client(config)
    with pytest.raises(EndpointFailing) as failing:
        client.generate(doomed)
    client.close()
    assert str(failing.value) == f'26 of the last 26 requests to {stub.url} failed; the first: HTTP 500: {{"error": "scripted failure"}}'
    assert len(stub.bodies) - sent_before <= 50  # 26 or so failures, plus the few in flight


def _respond_stage(llm: dict):
    return build_stage("respond", {}, index=1, output_dir="/nonexistent", llms={"teacher": llm})


def test_stage_check_asks_the_server_whether_it_serves_the_model_once_per_entry(stub):
    stub.models = ["stub-model", "other-model"]
    wrong = _respond_stage({"backend": "vllm_server", "model": "gpt-4", "url": stub.url + "/v1/"})
    assert wrong.check() == [Problem(f"llm 'teacher': {stub.url} does not serve model 'gpt-4'; it serves: stub-model, other-model", ("llm",))]
    with pytest.raises(UserError) as refused:  # prepare() raises what check() found, for callers that skipped the checks
        wrong.prepare()
    assert str(refused.value) == f"stage 01-respond: llm 'teacher': {stub.url} does not serve model 'gpt-4'; it serves: stub-model, other-model"

    right = {"backend": "vllm_server", "model": "other-model", "url": stub.url + "/v1"}
    assert _respond_stage(right).check() == []
    _respond_stage(right).prepare()  # the run's prepare() after the checks, and a second stage on the same LLM
    _respond_stage(right).prepare()
    assert stub.gets == ["/v1/models", "/v1/models"] and stub.bodies == []  # one request per entry, none with work


def test_stage_check_names_an_unreachable_server():
    url = f"http://127.0.0.1:{free_port()}"
    [problem] = _respond_stage({"backend": "vllm_server", "model": "m", "url": url}).check()
    assert problem.message == f"llm 'teacher': cannot reach {url}/v1/models: Connection refused"


def test_stage_check_names_a_url_that_is_not_an_openai_server(stub):
    [problem] = _respond_stage({"backend": "vllm_server", "model": "m", "url": stub.url + "/api"}).check()
    assert problem.message == f"llm 'teacher': {stub.url}/api/v1/models is not an OpenAI-compatible model list; url must be the server's root"


def _write_config(tmp_path, llms: str, stages: str):
    config = tmp_path / "c.yaml"
    config.write_text(f"""\
input: {{format: jsonl, paths: ["{config}"]}}
output: {tmp_path / "out"}
llms:
{llms}
stages:
{stages}
""")
    return config


def test_validate_lists_the_llm_stages_option_problems_at_once(tmp_path):
    """Option mistakes are refused when the config loads, all at once; what the options name (a seeds file, an
    llm under `llms:`) is looked at next, before Ray. The teacher is a managed server (no url): the pipeline
    starts it serving its name, so nothing is asked."""
    stages = f"""\
  - self_instruct: {{seeds: {tmp_path / "none.jsonl"}, pool_tasks: 8}}
  - evol_instruct: {{operations: [deepen, widen]}}
  - preferences: {{candidates: [{{llm: teacher}}]}}
  - grounded: {{judge: critic}}"""
    config = _write_config(tmp_path, '  teacher: {backend: vllm_server, model: m}', stages)
    proc = cli("validate", config)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {config}:6: stages[0].self_instruct.pool_tasks: pool_tasks (8) must be below prompt_tasks (8)",
        f"{config}:7: stages[1].evol_instruct.operations[1]: got 'widen', expected one of 'add_constraints', "
        "'deepen', 'concretize', 'increase_reasoning', 'complicate_input' or 'breadth'",
        f"{config}:8: stages[2].preferences.candidates: candidates must give at least two answers per instruction",
    ]
    fixed = stages.replace("pool_tasks: 8", "pool_tasks: 2").replace(", widen", "").replace("llm: teacher", "llm: teacher, samples: 2")
    config = _write_config(tmp_path, '  teacher: {backend: vllm_server, model: m}', fixed)
    proc = cli("validate", config)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {config}:6: stages[0].self_instruct.seeds: seeds file not found: {tmp_path / 'none.jsonl'}",
        f"{config}:9: stages[3].grounded.judge: llm 'critic' is not defined under 'llms:' (teacher)",
    ]


def test_validate_and_run_refuse_servers_that_cannot_serve_their_model_before_ray_starts(stub, tmp_path):
    """Each stage names the LLM it cannot use, at its own line; `run` says so before starting Ray."""
    closed = f"http://127.0.0.1:{free_port()}"
    config = _write_config(tmp_path, f"""\
  teacher: {{backend: vllm_server, model: gpt-4, url: "{stub.url}/v1"}}
  critic: {{backend: vllm_server, model: m, url: "{closed}/v1"}}""", """\
  - respond: {max_tokens: 8}
  - grounded: {judge: critic}""")
    expected = [
        f"error: {config}:7: stages[0].respond.llm: llm 'teacher': {stub.url} does not serve model 'gpt-4'; it serves: stub-model",
        f"{config}:8: stages[1].grounded.llm: llm 'teacher': {stub.url} does not serve model 'gpt-4'; it serves: stub-model",
        f"{config}:8: stages[1].grounded.judge: llm 'critic': cannot reach {closed}/v1/models: Connection refused",
    ]
    validate = cli("validate", config)
    assert validate.returncode == 2 and validate.stderr.splitlines() == expected

    run = cli("run", config)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert [line for line in run.stderr.splitlines() if line.strip()] == expected  # nothing else: Ray never started
    assert stub.gets == ["/v1/models", "/v1/models"] and stub.bodies == []  # once per process, no work sent
    assert not (tmp_path / "out").exists()
