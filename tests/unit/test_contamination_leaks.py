"""The hard leak corpus's rules (benchmarks/contamination_leaks.py): each kind of leak is what it says it is."""

from __future__ import annotations

import html
import json
import random
import re

import pytest

from benchmarks.contamination_leaks import (
    KINDS, Source, change_number, corpus, entities, instruction, join_or_split, light, load_sources, paraphrase,
    partial, plant, render, sample,
)
from filters.contamination import REGISTRY, BenchmarkItem, load_items, words

MC = Source(BenchmarkItem("mmlu", "7", ("Which river flows through Vienna?", "The Thames", "The Danube", "The Seine",
                                        "The Tiber")), "Which river flows through Vienna?",
            ("The Thames", "The Danube", "The Seine", "The Tiber"), "The Danube", 1)
WORD_PROBLEM = Source(BenchmarkItem("gsm8k", "3", ("q", "a")),
                      "Janet buys 16 eggs every day. If she eats 3 for breakfast, how many eggs does she have left?",
                      (), "She has 16 - 3 = <<16-3=13>>13 eggs left.\n#### 13")


def test_renderings_letter_the_right_answer_whatever_the_order():
    for style in range(3):
        for order in ([0, 1, 2, 3], [2, 0, 3, 1]):
            text = render(MC, style, order)
            letter = "ABCD"[order.index(MC.answer_index)]
            options = dict(re.findall(r"\(?([A-D])[.)] (The \w+)", text))
            assert options[letter] == "The Danube"
            assert re.search(rf"(Answer: \(?|answer is ){letter}\b", text)


def test_changed_number_changes_exactly_one_number_of_the_question():
    rng = random.Random(1)
    text = render(WORD_PROBLEM, 0)
    for _ in range(20):
        changed = change_number(text, rng, WORD_PROBLEM.question)
        before, after = (re.findall(r"\d+", t.split("\n")[0]) for t in (text, changed))
        assert len(before) == len(after) and sum(a != b for a, b in zip(before, after)) == 1
        assert changed.split("\n")[1:] == text.split("\n")[1:]  # the answer is untouched
    assert change_number(render(MC), rng, MC.question) is None


def test_joined_or_split_words_keep_every_letter_and_move_boundaries():
    rng = random.Random(2)
    text = render(WORD_PROBLEM, 0)
    for _ in range(20):
        edited = join_or_split(text, rng)
        assert re.sub(r"[\s-]", "", edited) == re.sub(r"[\s-]", "", text)
        assert words(edited) != words(text)


def test_entities_decode_back_to_the_original_text():
    rng = random.Random(3)
    text = render(MC, 0) + " Janet's \"eggs\" & <<16-3=13>>"
    encoded = entities(text, rng)
    assert "&#39;" in encoded and "&quot;" in encoded and "&amp;" in encoded and "&lt;" in encoded
    assert html.unescape(encoded).replace("\xa0", " ") == text


def test_every_light_edit_changes_the_rendering_and_keeps_the_item():
    rng = random.Random(4)
    seen = set()
    for _ in range(200):
        variant, text = light(MC, rng)
        seen.add(variant)
        assert "vienna" in text.lower()
    assert seen == {"case", "punctuation", "whitespace", "joined_split", "markdown", "latex", "html", "entities",
                    "reordered_options"}  # no number in the question: no changed_number


def test_partial_leaves_out_the_answer_or_cuts_a_fragment():
    rng = random.Random(5)
    whole = set(" ".join(render(WORD_PROBLEM, s) for s in range(2)).split(" "))
    for _ in range(40):
        variant, text = partial(WORD_PROBLEM, rng)
        if variant == "question_only":
            assert text == WORD_PROBLEM.question
        else:
            assert set(text.split(" ")) <= whole and len(text.split()) < len(render(WORD_PROBLEM).split())


def test_paraphrase_rewords_but_keeps_the_numbers_meaning():
    rng = random.Random(6)
    variant, text = paraphrase(WORD_PROBLEM, rng)
    question = text.split("\n")[0]
    assert variant == "worked" and "<<" not in text
    assert set(words(question)) != set(words(WORD_PROBLEM.question))
    assert ("16" in question or "sixteen" in question) and ("3" in question or "three" in question)
    variant, text = paraphrase(MC, rng)
    assert variant == "choices" and text.endswith("Correct: The Danube")


def test_instruction_rows_put_the_answer_in_the_assistant_turn_and_documents_flatten_both():
    rng = random.Random(7)
    for _ in range(30):
        variant, text, messages = instruction(WORD_PROBLEM, rng, flattened=False)
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert "Janet buys 16 eggs" in messages[0]["content"] and "#### 13" in messages[1]["content"]
        variant, text, messages = instruction(WORD_PROBLEM, rng, flattened=True)
        assert messages is None
        if variant.startswith("doc:jsonl"):
            [user, assistant] = json.loads(text)["messages"]
            assert "#### 13" in assistant["content"]
        else:
            assert text.index("Janet buys") < text.index("#### 13")


def test_plant_inserts_at_a_sentence_boundary():
    host = "First sentence here. Second one follows! A third? The end."
    rng = random.Random(8)
    for _ in range(10):
        out = plant(host, "LEAK", rng)
        before, after = out.split("\nLEAK\n")
        assert before + after == host and re.search(r"[.!?]\s$", before)


def test_corpus_has_every_kind_for_every_item():
    rng = random.Random(9)
    leaks = corpus([MC, WORD_PROBLEM], ["Some host text. More of it. The end."], rng)
    for s in (MC, WORD_PROBLEM):
        kinds = [lk.kind for lk in leaks if lk.source is s]
        assert sorted(kinds) == sorted([*KINDS, "instruction"])
        assert sum(lk.messages is not None for lk in leaks if lk.source is s) == 1


def test_shared_benchmarks_load_with_answers_and_sample_short_items(shared_data):
    sources = load_sources(["gsm8k", "mmlu"], shared_data / "benchmarks")
    mmlu = [s for s in sources if s.item.benchmark == "mmlu"]
    registry = {it.item_id: it for it in load_items(REGISTRY["mmlu"], shared_data / "benchmarks")}
    assert len(mmlu) >= 0.99 * len(registry)
    assert all(s.item == registry[s.item.item_id] and s.answer == s.choices[s.answer_index] for s in mmlu)
    picked = sample(sources, 100, random.Random(0))
    size = lambda s: sum(len(p.split()) for p in s.item.parts)  # noqa: E731
    sizes = sorted(size(s) for s in mmlu)
    short = [s for s in picked if s.item.benchmark == "mmlu" and size(s) <= sizes[len(sizes) // 4]]
    assert len([s for s in picked if s.item.benchmark == "mmlu"]) == 100 and len(short) >= 50


@pytest.mark.parametrize("seed", [0, 1])
def test_corpus_is_deterministic_for_a_seed(seed):
    make = lambda: [(lk.kind, lk.variant, lk.text) for lk in corpus([MC, WORD_PROBLEM], ["A host. Of text."], random.Random(seed))]  # noqa: E731
    assert make() == make()
