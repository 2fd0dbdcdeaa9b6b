"""The `llms:` config model and the response cache (keys, several processes, resume without paying twice),
on local disk and in object storage (a real S3 server)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing

import pytest
from openai_stub import OpenAIStub
from pydantic import ValidationError

from generators.cache import CachedClient, ResponseCache, request_key
from generators.client import Choice, Guide, Request, Response, SamplingParams, Usage
from generators.factory import make_client
from generators.llm_config import LLMConfig


def test_config_expands_env_secrets_and_refuses_mistakes(monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", "k-123")
    cfg = LLMConfig(backend="vllm_server", model="m", url="http://h:1", api_key="${TEACHER_KEY}")
    assert cfg.api_key.get_secret_value() == "k-123" and "k-123" not in repr(cfg)
    monkeypatch.delenv("TEACHER_KEY")
    with pytest.raises(ValidationError, match="TEACHER_KEY"):
        LLMConfig(backend="vllm_server", model="m", api_key="${TEACHER_KEY}")
    with pytest.raises(ValidationError, match="concurency"):
        LLMConfig(backend="vllm_server", model="m", concurency=4)
    with pytest.raises(ValidationError, match="url is only for"):
        LLMConfig(backend="transformers", model="m", url="http://h:1")
    with pytest.raises(ValidationError):
        LLMConfig(backend="tgi", model="m")


def test_managed_server_command_follows_config(monkeypatch, tmp_path):
    cfg = LLMConfig(backend="vllm_server", model="/models/tiny", dtype="float32", max_model_len=256,
                    tensor_parallel_size=2, cpu=True, server_args=["--enforce-eager", "--max-num-seqs", "8"],
                    server_env={"VLLM_CPU_KVCACHE_SPACE": "2"}, venv=str(tmp_path))
    assert cfg.managed
    args = cfg.server_command_args()
    assert args[args.index("--model") + 1] == "/models/tiny"
    assert args[args.index("--max-model-len") + 1] == "256"
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args.count("--enforce-eager") == 1 and "--no-enable-chunked-prefill" in args
    assert args[-2:] == ["--max-num-seqs", "8"]
    assert cfg.server_environment() == {"VLLM_CPU_KVCACHE_SPACE": "2"}
    assert cfg.server_python() == str(tmp_path / "bin" / "python")
    monkeypatch.setenv("PIPELINE_VLLM_VENV", "/opt/vllm-env")
    assert LLMConfig(backend="vllm_server", model="m").server_python() == "/opt/vllm-env/bin/python"
    assert not LLMConfig(backend="vllm_server", model="m", url="http://h:1").managed


def test_workers_of_a_driver_managed_server_get_its_url_and_wait_out_restarts():
    from generators.factory import parse_llm_config, server_process, worker_config

    entry = {"backend": "vllm_server", "model": "m", "cpu": True, "startup_timeout_s": 90, "port": 8123}
    worker = parse_llm_config(worker_config(entry, server_process(parse_llm_config(entry)), "10.0.0.7"))
    assert worker.url == "http://127.0.0.1:8123" and not worker.managed and worker.wait_for_server_s == 90


@pytest.mark.parametrize("host, machine, url", [
    ("0.0.0.0", "10.0.0.7", "http://10.0.0.7:8123"), ("::", "fd00::7", "http://[fd00::7]:8123"),
    ("gpu-box", "10.0.0.7", "http://gpu-box:8123"), ("10.0.0.9", "10.0.0.7", "http://10.0.0.9:8123")])
def test_a_server_listening_on_every_address_is_reached_at_the_drivers(host, machine, url):
    """`host: 0.0.0.0` (as vLLM's own docs write it) gave workers http://0.0.0.0:PORT, which on another machine
    is that machine itself: workers get the address of the driver's machine instead."""
    from generators.factory import parse_llm_config, server_process, worker_config

    entry = {"backend": "vllm_server", "model": "m", "host": host, "port": 8123}
    assert worker_config(entry, server_process(parse_llm_config(entry)), machine)["url"] == url


def test_request_key_covers_everything_that_changes_the_answer():
    base = Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=1))
    variants = [
        Request(messages=({"role": "user", "content": "hi!"},), params=SamplingParams(seed=1)),
        Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=2)),
        Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=1, n=2)),
        Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=1, stop=("x",))),
        Request(prompt="hi", params=SamplingParams(seed=1)),
        Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=1, prompt_logprobs=True)),
        Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=1, guide=Guide(regex="Score: [0-5]"))),
    ]
    keys = {request_key("m", r) for r in variants} | {request_key("other", base)}
    assert len(keys) == len(variants) + 1 and request_key("m", base) not in keys
    same = Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=1))
    assert request_key("m", same) == request_key("m", base)


def test_a_sampling_field_at_its_default_leaves_cached_keys_as_they_were():
    """Keys hash only the parameters a request sets, so adding a field to SamplingParams (prompt log-probs,
    guides) does not turn every cached answer into a miss."""
    request = Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(seed=1, max_tokens=64))
    content = {"model": "m", "endpoint": "chat", "messages": [{"role": "user", "content": "hi"}], "prompt": None,
               "params": {"seed": 1, "max_tokens": 64}}
    assert request_key("m", request) == hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _write_entries(cache_dir: str, worker: int, count: int) -> None:
    cache = ResponseCache(cache_dir)
    for i in range(count):
        cache.put(f"{worker}-{i}", Response([Choice(f"text {worker} {i}", "stop")], "m", Usage(1, 2)))
    cache.close()


@pytest.fixture(params=["local", "s3"])
def cache_dir(request, tmp_path) -> str:
    return str(tmp_path / "cache") if request.param == "local" else request.getfixturevalue("s3_bucket") + "/cache"


def stored(cache_dir: str) -> int:
    """Responses where the cache should be: objects in the bucket, or rows of the SQLite file on disk."""
    import sqlite3

    from pipeline import storage

    location = storage.locate(cache_dir)
    if not location.is_local:
        return len((location / "responses").files())
    with sqlite3.connect(location.local_path() / "responses.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_cache_is_shared_safely_by_several_processes(cache_dir):
    spawn = multiprocessing.get_context("spawn")  # a fresh process, as a Ray worker is (S3 clients do not survive fork)
    procs = [spawn.Process(target=_write_entries, args=(cache_dir, w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert stored(cache_dir) == 400
    cache = ResponseCache(cache_dir)
    assert len(cache) == 400
    got = cache.get_many(["3-99", "0-0", "missing"])
    assert got["3-99"].text == "text 3 99" and got["3-99"].cached and got["3-99"].usage == Usage(1, 2)
    assert "missing" not in got
    cache.put("failed", Response.failed("m", "boom"))
    assert len(cache) == 400


def test_resumed_run_pays_only_for_what_failed_before(cache_dir):
    requests = [Request(prompt=f"row {i}", params=SamplingParams(seed=i)) for i in range(12)]
    with OpenAIStub() as stub:
        stub.plan = {"row 5": ["400"]}  # fails for good in the first run, answers in the second
        config = {"backend": "vllm_server", "model": "m", "url": stub.url, "cache_dir": cache_dir, "max_retries": 0}
        first = make_client(config)
        run1 = first.generate(requests)
        first.close()
        assert [r.error is not None for r in run1].count(True) == 1 and len(stub.bodies) == 12
        assert stored(cache_dir) == 11

        second = make_client(config)
        run2 = second.generate(requests)
        second.close()
    assert len(stub.bodies) == 13 and stub.bodies[-1]["prompt"] == "row 5"
    assert [r.cached for r in run2] == [i != 5 for i in range(12)]
    assert [r.text for r in run2] == [f"row {i}"[::-1] + " #0" for i in range(12)]
    assert isinstance(second, CachedClient)


def test_a_cache_that_cannot_be_written_says_so_when_closed(s3_bucket, monkeypatch):
    """Responses are stored in the background; a store that refuses them must not pass in silence."""
    from tests.object_store import READ_ONLY_KEY, READ_ONLY_SECRET

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READ_ONLY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READ_ONLY_SECRET)
    cache = ResponseCache(f"{s3_bucket}/cache")
    cache.put("k", Response([Choice("text", "stop")], "m", Usage(1, 2)))
    with pytest.raises(OSError, match=f"response cache {s3_bucket}/cache: .*Access Denied"):
        cache.close()


def test_each_backend_has_a_config_of_its_own_and_the_documented_entries_load(monkeypatch):
    """docs/generation.md's `llms:` example, one entry per backend and mode, loads into each backend's model;
    a field of another backend is refused with the backend that reads it."""
    import re
    from pathlib import Path

    import yaml

    from generators.llm_config import RayVLLMConfig, TransformersConfig, VLLMServerConfig, parse_llm_config

    monkeypatch.setenv("TEACHER_API_KEY", "k-docs")
    doc = (Path(__file__).parents[2] / "docs" / "generation.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if b.startswith("llms:")]
    parsed = {name: parse_llm_config(entry) for name, entry in yaml.safe_load(block)["llms"].items()}
    assert {name: type(c) for name, c in parsed.items()} == {
        "teacher": VLLMServerConfig, "local": VLLMServerConfig, "cluster": RayVLLMConfig, "small": TransformersConfig}
    assert (parsed["cluster"].replicas, parsed["cluster"].tensor_parallel_size, parsed["small"].batch_size) == (4, 2, 8)
    assert parsed["teacher"].concurrency == 64 and parsed["local"].managed and parsed["local"].cpu
    assert type(LLMConfig(backend="transformers", model="m", device="cuda")) is TransformersConfig
    with pytest.raises(ValidationError, match="replicas is only for backend ray_vllm, not transformers"):
        LLMConfig(backend="transformers", model="m", replicas=2)
    with pytest.raises(ValidationError, match="device is only for backend transformers, not ray_vllm"):
        parse_llm_config({"backend": "ray_vllm", "model": "m", "device": "cuda"})
