"""The vllm_server backend against a real vLLM CPU server serving the tiny local Llama.

One server for the whole session (conftest); the fault test kills it mid-run and its watchdog
restarts it; the Ctrl-C test starts a managed server of its own in a child process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fault_proxy import FaultProxy
from sampled_tokens import first_new_clean_token

from generators.backends.vllm_server import VLLMServerClient
from generators.client import Request, SamplingParams
from generators.factory import make_client, parse_llm_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def chat(i: int, **params) -> Request:
    words = " ".join(["word"] * (i % 7))
    return Request(messages=({"role": "user", "content": f"Task {i}: list {words} things."},), params=SamplingParams(**params))


def expected_prompt_tokens(tokenizer, request: Request) -> int:
    rendered = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
    return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_generation_usage_and_cache_against_real_vllm(vllm_server, vllm_server_config, tokenizer, tmp_path):
    config = {**vllm_server_config, "url": vllm_server.url, "cache_dir": str(tmp_path / "cache"), "concurrency": 8}
    requests = [chat(i, max_tokens=12, n=2, seed=i, stop=("e",), logprobs=0 if i % 2 else None) for i in range(10)]
    requests.append(Request(prompt="Once upon a time", params=SamplingParams(max_tokens=6, temperature=0.0)))

    client = make_client(config)
    first = client.generate(requests)
    client.close()

    assert all(r.error is None for r in first)
    for request, r in zip(requests[:-1], first):
        assert r.usage.prompt_tokens == expected_prompt_tokens(tokenizer, request)
        assert len(r.choices) == 2 and 0 < r.usage.completion_tokens <= 24
        assert all("e" not in c.text for c in r.choices)  # cut at the stop string
        assert all(c.finish_reason in ("stop", "length") for c in r.choices)
        if request.params.logprobs is not None:
            assert all(len(c.logprobs) >= 1 and all(lp <= 0 for lp in c.logprobs) for c in r.choices)
    completion = first[-1]
    assert completion.choices[0].finish_reason == "length" and completion.usage.completion_tokens == 6

    again = make_client(config)
    second = again.generate(requests)
    assert again.inner.stats["requests"] == 0  # everything came from the cache
    again.close()
    assert all(r.cached for r in second) and [r.choices for r in second] == [r.choices for r in first]

    fresh = VLLMServerClient(parse_llm_config({**vllm_server_config, "url": vllm_server.url}))
    seeded = fresh.generate(requests[:3])
    fresh.close()
    assert [r.choices for r in seeded] == [r.choices for r in first[:3]]  # a seed makes vLLM's sampling repeatable


def test_a_stop_token_id_ends_the_sample_on_the_server(vllm_server, vllm_server_config, tokenizer):
    """How Magpie ends a sampled instruction at a special end of turn, which the server strips from the
    text a stop string would see."""
    client = VLLMServerClient(parse_llm_config({**vllm_server_config, "url": vllm_server.url}))
    prompt = "Once upon a time"
    [free] = client.generate([Request(prompt=prompt, params=SamplingParams(max_tokens=12, temperature=0.0))])
    ids = tokenizer(free.text, add_special_tokens=False)["input_ids"]
    cut = first_new_clean_token(ids, tokenizer, free.text)
    [stopped] = client.generate([Request(prompt=prompt, params=SamplingParams(max_tokens=12, temperature=0.0,
                                                                              stop_token_ids=(ids[cut],)))])
    client.close()
    assert free.choices[0].finish_reason == "length"
    assert stopped.text == tokenizer.decode(ids[:cut]) and stopped.choices[0].finish_reason == "stop"


def test_faults_lose_and_duplicate_no_row(vllm_server, vllm_server_config, tokenizer):
    """10% of requests get a 500 or a delay past the timeout, and the server is killed once mid-run."""
    total = 80
    requests = [chat(i, max_tokens=8, seed=i) for i in range(total)]
    reported: list[int] = []
    restarts_before = vllm_server.restarts
    killed = threading.Event()

    def on_response(i, response):
        reported.append(i)
        if len(reported) == 20 and not killed.is_set():
            killed.set()
            vllm_server.kill_for_test()

    with FaultProxy(vllm_server.url, error_rate=0.05, delay_rate=0.05, delay_s=8.0, seed=3) as proxy:
        config = parse_llm_config({**vllm_server_config, "url": proxy.url, "timeout_s": 5.0, "concurrency": 8,
                                   "max_retries": 4, "backoff_s": 0.2})
        client = VLLMServerClient(config, server=vllm_server, owns_server=False)
        responses = client.generate(requests, on_response=on_response)
        client.close()

    assert len(responses) == total and sorted(reported) == list(range(total))
    answered = [i for i, r in enumerate(responses) if r.error is None]
    failed = [i for i, r in enumerate(responses) if r.error is not None]
    assert len(answered) + len(failed) == total
    assert all(responses[i].error and not responses[i].choices for i in failed)
    for i in answered:  # each answer belongs to its own request: its prompt's token count matches
        assert responses[i].usage.prompt_tokens == expected_prompt_tokens(tokenizer, requests[i])
    assert proxy.counts["error_500"] > 0 and proxy.counts["delayed"] > 0
    assert vllm_server.restarts == restarts_before + 1 and vllm_server.ready.is_set()
    assert client.stats["retries"] > 0 and client.stats["server_waits"] > 0
    assert len(answered) >= total * 0.9, [responses[i].error for i in failed]


CHILD = textwrap.dedent("""
    import os, signal, sys, time
    # Ctrl-C's default, as under a terminal: a suite started in the background (CI) inherits an
    # ignored SIGINT, which Python keeps, and the child would sleep through the test's Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from generators.factory import make_client
    from generators.client import Request, SamplingParams
    client = make_client(dict(backend="vllm_server", model=sys.argv[1], python=sys.argv[2], cpu=True, dtype="float32",
                              max_model_len=256, startup_timeout_s=300))
    [r] = client.generate([Request(prompt="hello", params=SamplingParams(max_tokens=4))])
    assert r.error is None, r.error
    print("READY", client.server.pid, flush=True)
    time.sleep(600)
""")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_the_real_server_on_a_taken_port_is_a_port_error(vllm_server_config, taken_port):
    """What the managed server's start recognises (and, on a port it picked, answers by picking
    another: test_llm_server_process.py) is what vLLM really says, seconds in, before loading anything."""
    from generators.backends.vllm_process import PortTaken
    from generators.factory import server_process

    server = server_process(parse_llm_config({**vllm_server_config, "port": taken_port}))
    with pytest.raises(PortTaken, match=f"port {taken_port} is taken by another process"):
        server.start()
    assert not server.alive


def test_managed_server_leaves_no_orphan_after_ctrl_c(vllm_server_config, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), vllm_server_config["model"], vllm_server_config["python"]],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("READY"), f"child did not get ready: {line!r}"
        server_pgid = int(line.split()[1])
        assert _group_alive(server_pgid)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) != 0
        deadline = time.monotonic() + 20
        while _group_alive(server_pgid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _group_alive(server_pgid), "vLLM server processes survived the client's Ctrl-C"
    finally:
        if child.poll() is None:
            child.kill()


def test_respond_stage_end_to_end_on_the_vllm_server(run_stage, vllm_server, vllm_server_config, shared_data):
    """A generation stage through the engine (Ray Data actor, batches, accounting) answered by the real server."""
    import json

    lines = (shared_data / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()[:6]
    rows = [{"id": t["id"], "messages": [{"role": "user", "content": t["instruction"]}], "generated_by": "human",
             "parent_id": None, "source": "seeds", "meta": "{}"} for t in map(json.loads, lines)]
    llms = {"teacher": {**vllm_server_config, "url": vllm_server.url}}
    kept, dropped = run_stage("respond", {"samples": 2, "max_tokens": 12}, rows, llms=llms, seed=0)

    out = kept + dropped
    assert sorted(r["id"] for r in out) == sorted(f"{row['id']}.s{k}" for row in rows for k in range(2))
    assert all(r["generated_by"] == vllm_server_config["model"] for r in out)  # answered by the server, not a fallback
    assert all(r["messages"][-1]["role"] == "assistant" for r in out)
    assert not [r for r in dropped if r["_drop_reason"] == "llm_error"]
