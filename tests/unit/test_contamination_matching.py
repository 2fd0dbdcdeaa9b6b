"""Matching that survives real leaks (issue 17): markup, moved word boundaries, number words, fragments, short
items with their context, and paraphrases that keep a few runs of words, without flagging ordinary text."""

from __future__ import annotations

import csv
import random

import pytest

from benchmarks.contamination_leaks import KINDS, corpus, load_sources, sample
from filters.contamination import BenchmarkItem, NgramIndex, words, words_with_offsets
from filters.contamination.normalize import arrow_words

FILLER = ("The river valley was quiet in the early morning and the fishermen were already out on the water. "
          "Nobody in the village remembered a winter as mild as this one, said the old baker to his customers. ")
QUESTION = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
            "friends every day with four. How much in dollars does she make every day at the farmers' market?")
SHORT = "Which gas do plants absorb from the air"  # 8 words: indexed whole, as one gram


def _item(*parts, item_id="0"):
    return BenchmarkItem("toy", item_id, tuple(parts))


def _found(index, text):
    return [h.item.item_id for h in index.scan([text])[0]]


@pytest.mark.parametrize("leak", [
    "<p><b>Janet&#39;s ducks lay 16 eggs per day.</b></p><p>She&nbsp;eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four.</p>",  # tags glued to words, entities
    '{"content": "Which gas do plants absorb from the air?\\nCarbon dioxide"}',  # a JSON line's escaped newline
    "Which gas do plants ab-\nsorb from the air?",  # hyphenated across a line break
], ids=["html", "json-escape", "hyphenation"])
def test_markup_around_the_text_does_not_hide_it_and_spans_point_into_the_original(leak):
    index = NgramIndex.build([_item(QUESTION, item_id="q"), _item(SHORT, "Carbon dioxide", item_id="s")])
    text = FILLER + leak + " " + FILLER
    [hit] = index.scan([text])[0]
    assert all(len(FILLER) <= a < b <= len(FILLER) + len(leak) for a, b in hit.spans)
    assert words(text[hit.spans[0][0]:hit.spans[0][1]])[:4] in (["janets", "ducks", "lay", "16"], ["which", "gas", "do", "plants"])


def test_markup_rules_agree_between_the_fast_path_and_the_python_rule():
    assert words("<li>Lipids</li> Janet&#39;s&nbsp;eggs.\\nShe com-\n  pute 2=<<2*1=2>>2") == [
        "lipids", "janets", "eggs", "she", "compute", "2", "2"]
    ws, spans = words_with_offsets("x <b>Bold</b> com-\npute")
    assert ws == ["x", "bold", "compute"] and spans == [(0, 1), (5, 9), (14, 23)]
    rng = random.Random(5)
    pieces = list("abcnrtS<>&;#/-\\ \n\t\r\x0b\x1c\x85\xa0ſςΣ") + [
        "&nbsp;", "&#39;", "<p>", "</li>", "<<1+1=2>>", "-\n", "\\n", "&amp;", '<b class="x">', "&#x27;", "<tag>"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(5000)]
    flat, counts = arrow_words(texts)
    flat, at = flat.to_pylist(), 0
    for text, count in zip(texts, counts):
        assert flat[at:at + count] == words(text), repr(text)
        at += count


def test_two_short_grams_of_an_item_find_it_and_one_does_not():
    index = NgramIndex.build([_item(QUESTION, item_id="q")])
    reworded = ("Each day the ducks of Janet lay sixteen eggs. She eats three for breakfast every morning and bakes "
                "cakes. What does she earn at the market?")  # 9 words of the item in a row: two 8-grams, no 13-gram
    assert _found(index, FILLER + reworded + " " + FILLER) == ["q"]
    one_gram = "She eats three for breakfast every morning and then goes back to sleep."
    assert _found(index, FILLER + one_gram + " " + FILLER) == []


def test_number_words_and_digits_are_one_word():
    index = NgramIndex.build([_item("Tom has 3 red apples and 12 green pears in his basket", item_id="t")])
    assert _found(index, FILLER + "Tom has three red apples and twelve green pears in his basket. " + FILLER) == ["t"]


def test_runs_of_numbers_are_not_evidence():
    listing = "Return the sorted list. For example 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 gives the same."
    index = NgramIndex.build([_item(listing, item_id="l")])
    calendar = "March 2020 Mo Tu We Th Fr Sa Su " + " ".join(str(d) for d in range(1, 32)) + " Holidays and events"
    assert _found(index, FILLER + calendar + " " + FILLER) == []
    assert _found(index, FILLER + listing + " " + FILLER) == ["l"]


def test_short_multiple_choice_item_found_with_its_options_and_fragments_across_them():
    item = _item("Osteoclasts", "deposit bone", "resorb bone", "form cartilage", "absorb calcium", item_id="o")
    index = NgramIndex.build([item])
    assert index.stats.undetectable_items == 0
    assert _found(index, FILLER + "Osteoclasts\nA. deposit bone\nB. resorb bone\nC. form cartilage\nD. absorb calcium\n"
                  + FILLER) == ["o"]
    assert _found(index, FILLER + "Osteoclasts resorb bone. " + FILLER) == []
    long = _item("Which of these describes the role of osteoclasts in the remodelling of adult bone tissue",
                 "They deposit new bone", "They resorb old bone", "They form cartilage", "They absorb calcium", item_id="l")
    fragment = "of adult bone tissue? (A) They deposit new bone (B) They resorb old bone"
    assert _found(NgramIndex.build([long]), FILLER + fragment + " " + FILLER) == ["l"]


@pytest.fixture(scope="module")
def hard_corpus(shared_data):
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        news = [f"{r[1]}. {r[2]}" for r in csv.reader(f)]
    clean = [" ".join(news[i:i + 8]) for i in range(0, 4000, 8)]
    rng = random.Random(1)
    sources = load_sources(["humaneval", "gsm8k", "mmlu"], shared_data / "benchmarks")
    items = [s.item for s in sources]
    return NgramIndex.build(items), corpus(sample(sources, 40, rng), clean, rng), clean


def test_hard_corpus_recall_per_kind_and_no_false_positive(hard_corpus):
    """The stage's defaults on the hard leak corpus (40 items per benchmark, half of them short) planted in real
    English news: before issue 17's matching, light edits were found 0.82 of the time and paraphrases 0.51
    (on 200 items per benchmark)."""
    index, leaks, clean = hard_corpus
    texts = [lk.text if lk.messages is None else "\n\n".join(m["content"] for m in lk.messages) for lk in leaks]
    found = [lk.source.key in {(h.item.benchmark, h.item.item_id) for h in row} for lk, row in zip(leaks, index.scan(texts))]
    recall = {k: sum(f for f, lk in zip(found, leaks) if lk.kind == k) / sum(lk.kind == k for lk in leaks) for k in KINDS}
    assert recall["verbatim"] == 1.0 and recall["instruction"] >= 0.98, recall
    assert recall["light"] >= 0.97 and recall["partial"] >= 0.9 and recall["paraphrase"] >= 0.7, recall
    assert index.scan(clean) == [[] for _ in clean]
