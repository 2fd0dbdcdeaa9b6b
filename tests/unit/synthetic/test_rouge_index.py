"""ROUGE-L F and the novelty index must agree with `rouge_score` exactly, on real instruction text."""

import json
import random

import pytest
from rouge_score import rouge_scorer

from generators.rouge import NoveltyIndex, lcs_length, rouge_l_f, rouge_tokens
from rouge_score import tokenize as rs_tokenize


def _lcs_dp(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


@pytest.fixture(scope="module")
def instructions(shared_data):
    seeds = [json.loads(l)["instruction"] for l in open(shared_data / "seeds/self_instruct/seed_tasks.jsonl")]
    gsm = [json.loads(l)["question"] for l in open(shared_data / "benchmarks/gsm8k/test.jsonl")][:100]
    return seeds + gsm


def _perturb(text: str, rng: random.Random) -> str:
    """A near-copy: a few words deleted, swapped or replaced, like a model paraphrasing a prompt."""
    words = text.split()
    for _ in range(rng.randint(0, 4)):
        if not words:
            break
        op, i = rng.random(), rng.randrange(len(words))
        if op < 0.4:
            del words[i]
        elif op < 0.7:
            words.insert(i, rng.choice(["please", "the", "Now,", "very", "a", "é", "1999"]))
        else:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def test_tokens_match_rouge_score_tokenizer():
    texts = ["Hello, WORLD! it's 2024 café naïve e-mail", "ÄÖÜ ß straße", "", "  ...  ", "\u212a kelvin İstanbul"]
    for t in texts:
        assert rouge_tokens(t) == rs_tokenize.tokenize(t, None)


def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(500):
        a = [rng.randrange(5) for _ in range(rng.randrange(0, 80))]
        b = [rng.randrange(5) for _ in range(rng.randrange(0, 80))]
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_rouge_l_f_equals_rouge_score_on_random_pairs(instructions):
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(1)
    for _ in range(400):
        a = rng.choice(instructions)
        b = _perturb(a, rng) if rng.random() < 0.5 else rng.choice(instructions)
        assert rouge_l_f(a, b) == scorer.score(a, b)["rougeL"].fmeasure


def test_index_best_match_equals_brute_force(instructions):
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(2)
    pool = instructions[:250]
    index = NoveltyIndex(pool)
    queries = [_perturb(rng.choice(pool), rng) for _ in range(40)] + rng.sample(pool, 5)
    queries += ["completely unrelated words zyx qqq", "", "?!"]
    for q in queries:
        scores = [scorer.score(q, p)["rougeL"].fmeasure for p in pool]
        best = max(scores)
        for floor in (0.7, 0.5, 0.3):
            f, i = index.best_match(q, floor)
            if best > floor:
                assert f == best and scores[i] == best
            else:
                assert (f, i) == (0.0, None)
            assert index.is_novel(q, floor) == (best <= floor)


def test_index_grows_and_sees_its_new_members():
    index = NoveltyIndex(["Write a poem about the sea."])
    text = "Summarise the following news article in two sentences."
    assert index.is_novel(text)
    assert index.add(text) == 1
    assert not index.is_novel("Summarize the following news article in two sentences.")
    assert not index.is_novel("Summarise the following news article in two short sentences.")
    assert len(index) == 2
