"""The transformers backend, for real, on the tiny local Llama: batching, padding, sampling, stops, usage."""

from __future__ import annotations

import pytest

from generators.client import Request, SamplingParams
from generators.factory import make_client
from sampled_tokens import first_new_clean_token


@pytest.fixture(scope="module")
def client(tiny_model):
    c = make_client({"backend": "transformers", "model": str(tiny_model), "batch_size": 4, "dtype": "float32"})
    yield c
    c.close()


def ask(text: str, **params) -> Request:
    return Request(messages=({"role": "user", "content": text},), params=SamplingParams(**params))


PROMPTS = ["Write a haiku.", "Give me three tips for staying healthy while travelling far from home.", "Hi", "Sort these numbers: 3 1 2"]


def test_batched_greedy_generation_matches_one_by_one(client):
    """Left padding and the attention mask make a prompt's greedy answer independent of its batch mates."""
    batched = client.generate([ask(p, temperature=0.0, max_tokens=8) for p in PROMPTS])
    alone = [client.generate([ask(p, temperature=0.0, max_tokens=8)])[0] for p in PROMPTS]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert all(r.error is None and r.text for r in batched)


def test_usage_counts_prompt_once_and_every_sample(client):
    responses = client.generate([ask(p, temperature=1.0, max_tokens=6, n=3, seed=11) for p in PROMPTS])
    tok = client.tokenizer
    for prompt, r in zip(PROMPTS, responses):
        rendered = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        assert r.usage.prompt_tokens == len(tok(rendered, add_special_tokens=False)["input_ids"])
        assert len(r.choices) == 3
        assert 3 <= r.usage.completion_tokens <= 18
        if all(c.finish_reason == "length" for c in r.choices):
            assert r.usage.completion_tokens == 18


def test_stop_string_cuts_the_text_and_sets_finish_reason(client):
    [free] = client.generate([ask(PROMPTS[1], temperature=0.0, max_tokens=16)])
    assert free.choices[0].finish_reason == "length" and len(free.text) > 6
    stop = free.text[4:6]
    [stopped] = client.generate([ask(PROMPTS[1], temperature=0.0, max_tokens=16, stop=(stop,))])
    assert stopped.text == free.text[: free.text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage.completion_tokens < free.usage.completion_tokens


def test_a_stop_token_id_ends_the_sample_like_eos(client):
    """What Magpie asks for a chat template's end of turn: the token ends the sample and is not in the text."""
    [free] = client.generate([ask(PROMPTS[1], temperature=0.0, max_tokens=16)])
    ids = client.tokenizer(free.text, add_special_tokens=False)["input_ids"]
    cut = first_new_clean_token(ids, client.tokenizer, free.text)
    [stopped] = client.generate([ask(PROMPTS[1], temperature=0.0, max_tokens=16, stop_token_ids=(ids[cut],))])
    assert stopped.text == client.tokenizer.decode(ids[:cut]) and stopped.choices[0].finish_reason == "stop"
    assert stopped.usage.completion_tokens == cut + 1  # the stop token is counted, as vLLM counts it


def test_seeded_sampling_is_reproducible_and_samples_differ(client):
    requests = [ask(p, temperature=1.0, max_tokens=8, n=2, seed=5) for p in PROMPTS[:2]]
    first, again = client.generate(requests), client.generate(requests)
    assert [[c.text for c in r.choices] for r in first] == [[c.text for c in r.choices] for r in again]
    assert any(r.choices[0].text != r.choices[1].text for r in first)


def test_logprobs_and_completion_endpoint(client):
    [r] = client.generate([Request(prompt="The capital of France is", params=SamplingParams(max_tokens=5, logprobs=1, temperature=0.0))])
    choice = r.choices[0]
    assert len(choice.logprobs) == r.usage.completion_tokens and all(lp <= 0 for lp in choice.logprobs)
    assert r.usage.prompt_tokens == len(client.tokenizer("The capital of France is")["input_ids"])
