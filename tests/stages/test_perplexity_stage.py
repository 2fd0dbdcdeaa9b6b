"""The perplexity stage through the engine: a tiny local Llama through the transformers backend, and a
KenLM model estimated here on real news text."""

from __future__ import annotations

import csv
import math
import random

import pytest

from pipeline.errors import UserError
from pipeline.records import DROP_REASON, stable_id


@pytest.fixture(scope="module")
def news(shared_data) -> list[str]:
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        return [d for _, _, d in csv.reader(f)]


@pytest.fixture(scope="module")
def tiny_llama(news, tmp_path_factory):
    from tiny_models.llama import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("ppl_llama"), news[:2000], vocab_size=2000))


def doc(text: str, **extra) -> dict:
    return {"id": stable_id(text), "text": text, "url": None, "domain": None, "source": "news", "meta": "{}", **extra}


def model_perplexity(model_dir: str, text: str, max_tokens: int) -> float:
    """The model's perplexity of the text's first tokens, by a plain forward pass and its loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :max_tokens]  # no BOS here: the first token is unscored
    with torch.no_grad():
        return math.exp(model(ids, labels=ids).loss.item())


def test_scores_are_the_models_perplexity_of_the_first_tokens(run_stage, tiny_llama, news):
    llms = {"scorer": {"backend": "transformers", "model": tiny_llama, "dtype": "float32", "batch_size": 4}}
    long = " ".join(news[3000:3040])  # far longer than max_tokens
    texts = [*news[2100:2106], long]
    kept, dropped = run_stage("perplexity", {"llm": "scorer", "max_tokens": 32, "max_perplexity": 1e9},
                              [doc(t) for t in texts], llms=llms)
    assert not dropped
    by_text = {r["text"]: r["perplexity"] for r in kept}
    for text in texts:
        assert by_text[text] == pytest.approx(model_perplexity(tiny_llama, text, 32), rel=1e-4)


def test_instruction_rows_are_scored_by_their_response(run_stage, tiny_llama, news):
    llms = {"scorer": {"backend": "transformers", "model": tiny_llama, "dtype": "float32"}}
    row = {"id": "i1", "messages": [{"role": "user", "content": "Summarise the news."}, {"role": "assistant", "content": news[2200]}],
           "generated_by": None, "parent_id": None, "source": "seed", "meta": "{}"}
    kept, _ = run_stage("perplexity", {"llm": "scorer", "max_perplexity": 1e9}, [row], llms=llms)
    assert kept[0]["perplexity"] == pytest.approx(model_perplexity(tiny_llama, news[2200], 512), rel=1e-4)


def test_keep_share_drops_the_most_perplexing_rows(run_stage, tiny_llama, news):
    llms = {"scorer": {"backend": "transformers", "model": tiny_llama, "dtype": "float32", "batch_size": 8}}
    rows = [doc(t) for t in news[2300:2340]] + [doc(""), doc("   "), doc("Reuters")]  # nothing to score in the last three
    kept, dropped = run_stage("perplexity", {"llm": "scorer", "keep_share": 0.75}, rows, llms=llms)
    assert len(kept) + len(dropped) == len(rows)
    reasons = [r[DROP_REASON] for r in dropped]
    assert reasons.count("perplexity_too_short") == 3
    share_dropped = [r for r in dropped if r[DROP_REASON] == "perplexity_above_keep_share"]
    # at least the share is kept; rows whose perplexities share a histogram bin (0.14%) go together
    assert 30 <= len(kept) <= 32 and len(kept) + len(share_dropped) == 40
    assert max(r["perplexity"] for r in kept) < min(r["perplexity"] for r in share_dropped)


def test_max_perplexity_per_language(run_stage, tiny_llama, news):
    llms = {"scorer": {"backend": "transformers", "model": tiny_llama, "dtype": "float32"}}
    texts = news[2400:2420]
    scores = sorted(model_perplexity(tiny_llama, t, 512) for t in texts)
    middle = (scores[9] + scores[10]) / 2
    rows = [doc(t, lang=lang) for t in texts for lang in ("en", "de")]
    kept, dropped = run_stage("perplexity", {"llm": "scorer", "max_perplexity": {"en": middle, "default": 1e9}}, rows, llms=llms)
    assert {r["lang"] for r in dropped} == {"en"} and len(dropped) == 10
    assert all(r[DROP_REASON] == "perplexity_above_max" and r["perplexity"] > middle for r in dropped)
    assert sum(r["lang"] == "de" for r in kept) == 20


def test_kenlm_separates_news_from_shuffled_words(run_stage, news, tmp_path):
    pytest.importorskip("kenlm")
    from filters.perplexity import estimate_arpa

    model = tmp_path / "news.arpa"
    estimate_arpa(news[:4000], str(model))
    rng = random.Random(0)
    clean = news[5000:5050]
    shuffled = [" ".join(rng.sample(t.split(), len(t.split()))) for t in news[5050:5100]]
    rows = [doc(t, source="clean") for t in clean] + [doc(t, source="shuffled") for t in shuffled]
    kept, dropped = run_stage("perplexity", {"kenlm_model": str(model), "keep_share": 0.5}, rows)
    assert len(kept) == 50 and len(dropped) == 50
    assert sum(r["source"] == "shuffled" for r in dropped) >= 40


def test_a_missing_model_or_llm_is_a_user_error(run_stage, tmp_path):
    with pytest.raises(UserError, match="kenlm_model"):
        run_stage("perplexity", {"kenlm_model": str(tmp_path / "none.arpa")}, [doc("text")])
    with pytest.raises(UserError, match="llm 'scorer' is not defined"):
        run_stage("perplexity", {"llm": "scorer"}, [doc("text")])
    ray_llm = {"scorer": {"backend": "ray_vllm", "model": "m"}}
    with pytest.raises(UserError, match="no prompt log-probs"):
        run_stage("perplexity", {"llm": "scorer"}, [doc("text")], llms=ray_llm)
