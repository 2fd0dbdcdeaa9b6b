"""Structured outputs: a guide reaches vLLM and constrains what it writes; a server that refuses guided
decoding is detected once and then gets free text (`structured: auto`) or fails the request (`on`); a
backend without guided decoding does the same.

The refusing server is the scripted stub with one change, the one thing a refusing server does: it
answers HTTP 400 to any body that carries `structured_outputs`. The guided answers come from the real
vLLM CPU server.
"""

from __future__ import annotations

import logging
import re

import pytest
from openai_stub import OpenAIStub

from generators.backends.vllm_server import VLLMServerClient
from generators.client import UNGUIDED, Guide, Request, SamplingParams
from generators.evol_instruct import EQUALITY_FORMAT
from generators.llm_config import VLLMServerConfig
from generators.preferences import RUBRIC_FORMAT, parse_rating


class RefusingStub(OpenAIStub):
    def _answer(self, path, body, headers):
        if "structured_outputs" in body:
            with self._lock:
                self.bodies.append(body)
            return 400, b'{"error": {"message": "Unrecognized request argument supplied: structured_outputs"}}'
        return super()._answer(path, body, headers)


def _client(url: str) -> VLLMServerClient:
    return VLLMServerClient(VLLMServerConfig(backend="vllm_server", url=url, model="stub-model", max_retries=1, backoff_s=0.01))


def _guided(prompt: str, required: bool = False) -> Request:
    return Request(prompt=prompt, params=SamplingParams(max_tokens=8, guide=Guide("(Equal|Different)", required)))


def _guided_bodies(stub) -> list[dict]:
    return [b for b in stub.bodies if "structured_outputs" in b]


def test_a_server_that_refuses_guides_is_detected_once_and_then_gets_free_text(caplog):
    with RefusingStub() as stub, caplog.at_level(logging.WARNING, logger="generators.backends.vllm_server"):
        client = _client(stub.url)
        try:
            first = client.generate([_guided("first")])[0]
            later = client.generate([_guided("second"), _guided("third")])
        finally:
            client.close()
    assert first.error is None and first.text == "tsrif #0"  # answered, as free text
    assert [r.text for r in later] == ["dnoces #0", "driht #0"]
    assert len(_guided_bodies(stub)) == 1  # later requests are not sent guided again
    assert "Unrecognized request argument" in client.guides_refused
    assert sum("refuses structured outputs" in r.getMessage() for r in caplog.records) == 1  # said once in the log


def test_structured_on_fails_the_request_on_a_server_that_refuses_guides():
    with RefusingStub() as stub:
        client = _client(stub.url)
        try:
            responses = client.generate([_guided("first", required=True)]) + client.generate([_guided("second", required=True)])
        finally:
            client.close()
    assert all(r.error and "refuses guided decoding" in r.error and not r.choices for r in responses)
    assert stub.attempts["second"] == 0  # known refused: not sent at all


def test_a_request_refused_for_its_own_sake_does_not_turn_guides_off():
    with OpenAIStub() as stub:  # accepts guides; this one request is bad either way
        stub.plan["bad"] = ["400", "400"]
        client = _client(stub.url)
        try:
            bad = client.generate([_guided("bad")])[0]
            good = client.generate([_guided("good")])[0]
        finally:
            client.close()
    assert bad.error and "HTTP 400" in bad.error
    assert good.error is None and client.guides_refused is None
    assert stub.bodies[-1]["structured_outputs"] == {"regex": "(Equal|Different)"}  # vLLM's field, still sent


def test_transformers_backend_drops_a_guide_under_auto_and_fails_it_under_on(tiny_model):
    from generators.backends.transformers_local import TransformersClient
    from generators.llm_config import TransformersConfig

    client = TransformersClient(TransformersConfig(backend="transformers", model=str(tiny_model)))
    plain = SamplingParams(temperature=0.0, max_tokens=6)
    try:
        free, auto, on = client.generate([
            Request(prompt="Write a poem", params=plain),
            Request(prompt="Write a poem", params=SamplingParams(temperature=0.0, max_tokens=6, guide=Guide("(Yes|No)"))),
            Request(prompt="Write a poem", params=SamplingParams(temperature=0.0, max_tokens=6, guide=Guide("(Yes|No)", required=True))),
        ])
    finally:
        client.close()
    assert auto.text == free.text and auto.error is None
    assert on.error == UNGUIDED.format("transformers")


@pytest.mark.slow
def test_vllm_decodes_into_the_guide(vllm_server, vllm_server_config):
    """The tiny random model writes byte soup; guided, it writes exactly the verdict formats the rules parse."""
    config = VLLMServerConfig(**{**vllm_server_config, "url": vllm_server.url})
    client = VLLMServerClient(config)
    chat = ({"role": "user", "content": "Is the first instruction the same request as the second?"},)
    try:
        free, verdict, rating = client.generate([
            Request(messages=chat, params=SamplingParams(temperature=0.0, max_tokens=12, seed=1)),
            Request(messages=chat, params=SamplingParams(temperature=0.0, max_tokens=12, seed=1, guide=Guide(EQUALITY_FORMAT))),
            Request(messages=chat, params=SamplingParams(temperature=0.0, max_tokens=200, seed=1, guide=Guide(RUBRIC_FORMAT))),
        ])
    finally:
        client.close()
    assert not re.fullmatch(EQUALITY_FORMAT, free.text)
    assert verdict.text in ("Equal", "Different") and verdict.choices[0].finish_reason == "stop"
    assert rating.error is None and client.guides_refused is None
    if rating.choices[0].finish_reason == "stop":  # a random model may spend its tokens on the justification
        assert parse_rating(rating.text) is not None
