"""The vllm_server client's request/response mapping, retries, timeouts and failure reporting.

Against OpenAIStub, a local HTTP server scripted to fail in given ways, so each retry rule is pinned
exactly; the same client against the real vLLM server is tested in test_llm_vllm_server.py.
"""

from __future__ import annotations

import pytest
from openai_stub import OpenAIStub

from generators.backends.vllm_server import VLLMServerClient, backoff_delay
from generators.client import Request, SamplingParams
from generators.factory import make_client
from generators.llm_config import LLMConfig


def client_for(url: str, **overrides) -> VLLMServerClient:
    config = {"backend": "vllm_server", "model": "stub-model", "url": url, "timeout_s": 0.5,
              "max_retries": 2, "backoff_s": 0.01, "backoff_max_s": 0.05, "concurrency": 4, **overrides}
    return VLLMServerClient(LLMConfig(**config))


@pytest.fixture
def stub():
    with OpenAIStub(sleep_s=2.0) as s:
        yield s


def chat(text: str, **params) -> Request:
    return Request(messages=({"role": "system", "content": "be brief"}, {"role": "user", "content": text}),
                   params=SamplingParams(**params))


def test_chat_request_and_response_mapping(stub):
    client = client_for(stub.url)
    [response] = client.generate([chat("hello world", n=3, stop=("\n", "END"), seed=7, logprobs=2, max_tokens=9)])
    client.close()

    body = stub.bodies[0]
    assert body["model"] == "stub-model"
    assert body["messages"][-1] == {"role": "user", "content": "hello world"}
    assert (body["n"], body["stop"], body["seed"], body["max_tokens"]) == (3, ["\n", "END"], 7, 9)
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert [c.text for c in response.choices] == ["dlrow olleh #0", "dlrow olleh #1", "dlrow olleh #2"]
    assert [c.finish_reason for c in response.choices] == ["stop", "length", "length"]
    assert [c.logprobs for c in response.choices] == [[-0.5], [-1.0], [-1.5]]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (2, 9)
    assert response.error is None


def test_completion_request_mapping_and_defaults(stub):
    client = client_for(stub.url)
    [with_lp, plain] = client.generate([Request(prompt="a b c", params=SamplingParams(logprobs=0)), Request(prompt="d e")])
    client.close()

    bodies = {b["prompt"]: b for b in stub.bodies}
    assert bodies["a b c"]["logprobs"] == 0 and "messages" not in bodies["a b c"]
    assert "logprobs" not in bodies["d e"] and "seed" not in bodies["d e"] and "stop" not in bodies["d e"]
    assert with_lp.choices[0].logprobs == [-0.25] and plain.choices[0].logprobs is None
    assert plain.text == "e d #0"


def test_server_errors_are_retried_until_success(stub):
    stub.plan = {"flaky": ["500", "500", "ok"], "garbled": ["garbage", "ok"]}
    client = client_for(stub.url)
    flaky, garbled = client.generate([chat("flaky"), chat("garbled")])
    client.close()
    assert flaky.error is None and flaky.text == "ykalf #0"
    assert garbled.error is None
    assert stub.attempts["flaky"] == 3 and stub.attempts["garbled"] == 2
    assert client.stats["retries"] == 3


def test_request_that_keeps_failing_is_reported_not_raised(stub):
    stub.plan = {"doomed": ["500"] * 10}
    client = client_for(stub.url, max_retries=2)
    doomed, fine = client.generate([chat("doomed"), chat("fine")])
    client.close()
    assert doomed.choices == [] and "HTTP 500" in doomed.error
    assert stub.attempts["doomed"] == 3  # first try + max_retries
    assert fine.error is None and client.stats["failed"] == 1


def test_client_errors_are_not_retried(stub):
    stub.plan = {"bad request": ["400", "ok"]}
    client = client_for(stub.url)
    [response] = client.generate([chat("bad request")])
    client.close()
    assert "HTTP 400" in response.error and stub.attempts["bad request"] == 1


def test_timeouts_are_retried_and_then_reported(stub):
    stub.plan = {"slow once": ["sleep", "ok"], "always slow": ["sleep"] * 5}
    client = client_for(stub.url, timeout_s=0.3, max_retries=1)
    once, always = client.generate([chat("slow once"), chat("always slow")])
    client.close()
    assert once.error is None and stub.attempts["slow once"] == 2
    assert "timeout" in always.error and stub.attempts["always slow"] == 2


def test_unreachable_server_fails_each_request_with_its_error():
    client = client_for("http://127.0.0.1:9", max_retries=1)
    responses = client.generate([chat("a"), chat("b")])
    client.close()
    assert all("connection failed" in r.error for r in responses)


def test_worker_waits_for_a_restarting_server_instead_of_failing():
    """A worker of a driver-managed server sees only its URL: it polls /health until the server is back."""
    import threading
    import time

    from tests.ports import free_port

    port = free_port()
    client = client_for(f"http://127.0.0.1:{port}", max_retries=1, wait_for_server_s=30)
    stubs = []

    def come_back_later():
        time.sleep(1.5)
        stubs.append(OpenAIStub(port=port).__enter__())

    threading.Thread(target=come_back_later).start()
    [response] = client.generate([chat("are you back")])
    client.close()
    stubs[0].__exit__()
    assert response.error is None and response.text == "kcab uoy era #0"
    assert client.stats["server_waits"] == 1


def test_order_kept_and_each_response_reported_once(stub):
    stub.plan = {f"row {i}": ["500"] * (i % 3) for i in range(30)}
    seen: list[int] = []
    client = client_for(stub.url, concurrency=5)
    responses = client.generate([chat(f"row {i}") for i in range(30)], on_response=lambda i, r: seen.append(i))
    client.close()
    assert [r.text for r in responses] == [f"row {i}"[::-1] + " #0" for i in range(30)]
    assert sorted(seen) == list(range(30))


def test_api_key_from_environment_is_sent_as_bearer_token(stub, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "s3cret")
    client = make_client({"backend": "vllm_server", "model": "m", "url": stub.url, "api_key": "${STUB_KEY}"})
    client.generate([chat("x")])
    client.close()
    assert stub.headers[0]["Authorization"] == "Bearer s3cret"


def test_backoff_is_exponential_with_full_jitter():
    for attempt in range(6):
        draws = [backoff_delay(attempt, base_s=0.5, max_s=4.0) for _ in range(200)]
        cap = min(4.0, 0.5 * 2**attempt)
        assert all(0 <= d <= cap for d in draws)
        assert max(draws) > cap / 2 and len(set(draws)) > 100
