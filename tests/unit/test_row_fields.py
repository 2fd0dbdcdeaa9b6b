"""Which texts of a row are scanned for benchmark items, by field, and how a match is traced back to its field."""

from __future__ import annotations

import csv

import pyarrow as pa
import pytest

from filters.contamination import REGISTRY, NgramIndex, load_items
from filters.contamination.benchmarks import _hub_rows, items_from_rows
from filters.contamination.rows import Located, RowText, longest
from pipeline.normalize import SCHEMAS, Normalizer
from pipeline.records import TEXT_VIEWS, row_texts, text_column

QUESTION = ("A farmer has 17 sheep and buys 5 more every week for 3 weeks, then sells half of the flock "
            "at the market on Sunday. How many sheep does the farmer have left at the end?")
ANSWER = "He buys 5 * 3 = 15 sheep, so he has 17 + 15 = 32 and sells 16. The answer is 16 sheep in all."


def _batch(kind: str, *records: dict) -> pa.Table:
    normalizer = Normalizer(kind, "test")
    return pa.Table.from_pylist([normalizer.row(r) for r in records], schema=SCHEMAS[kind])


PAIR = {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
                   {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}],
        "chosen": "good", "rejected": "bad"}


def test_preference_rows_give_prompt_chosen_and_rejected_by_message():
    """Preference rows were read as empty text: DPO data always looked clean."""
    batch = _batch("preference", PAIR)
    assert text_column(batch) == ["Q1\n\nA1\n\nQ2\n\ngood"]  # filters judge the prompt and the chosen answer
    assert row_texts(batch) == [[("prompt", 1, "Q1"), ("prompt", 2, "A1"), ("prompt", 3, "Q2"),
                                 ("chosen", 0, "good"), ("rejected", 0, "bad")]]
    assert row_texts(batch, "instruction") == [[("prompt", 1, "Q1")]]
    assert row_texts(batch, "response") == [[("chosen", 0, "good"), ("rejected", 0, "bad")]]
    # the HH-RLHF form: two whole dialogues, split into the shared prompt and the two last turns
    hh = _batch("preference", {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go."})
    assert row_texts(hh) == [[("prompt", 0, "Hi?"), ("chosen", 0, "Hello."), ("rejected", 0, "Go.")]]


def test_instruction_and_document_rows_read_what_text_column_reads_in_pieces():
    chat = _batch("instruction", {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                                               {"role": "assistant", "content": "A"}, {"role": "user", "content": "U2"}]})
    for view in TEXT_VIEWS:
        assert [RowText.join(texts).text for texts in row_texts(chat, view)] == text_column(chat, view)
    assert row_texts(chat) == [[("messages", 1, "U"), ("messages", 2, "A"), ("messages", 3, "U2")]]
    docs = _batch("document", {"text": "one"}, {"text": ""})
    assert row_texts(docs) == [[("text", None, "one")], [("text", None, "")]]
    with pytest.raises(ValueError, match="unknown view"):
        row_texts(docs, "respnse")


def test_spans_of_the_joined_text_are_located_in_their_fields():
    row = RowText.join([("prompt", 0, "abc"), ("chosen", 0, "defgh"), ("rejected", 0, "")])
    assert row.text == "abc\n\ndefgh\n\n"
    located = row.locate([(1, 3), (2, 7)])  # the second crosses from the prompt into chosen
    assert located == [Located("prompt", 0, 1, 3), Located("prompt", 0, 2, 3), Located("chosen", 0, 0, 2)]
    assert [row.quote(s) for s in located] == ["bc", "c", "de"]
    assert longest(located) == Located("prompt", 0, 1, 3)
    assert longest([Located("text", None, 0, 4), Located("text", None, 5, 9), Located("text", None, 9, 15)]).start == 9


def test_an_item_split_over_prompt_and_chosen_is_one_hit_traced_to_both():
    """Scanned as one text, the question in the prompt and the answer in `chosen` are the whole item."""
    index = NgramIndex.build(items_from_rows(REGISTRY["gsm8k"], [{"question": QUESTION, "answer": ANSWER}], ("question", "answer")))
    batch = _batch("preference", {"prompt": QUESTION, "chosen": "Sure. " + ANSWER, "rejected": "No idea."})
    [row] = [RowText.join(texts) for texts in row_texts(batch)]
    [[hit]] = index.scan([row.text])
    assert hit.coverage == 1.0
    spans = row.locate(hit.spans)
    assert [(s.field, s.message, row.quote(s)) for s in spans] == [("prompt", 0, QUESTION), ("chosen", 0, ANSWER)]
    assert (spans[1].start, longest(spans).field) == (len("Sure. "), "prompt")


def test_mmlu_items_are_named_by_subject_and_position_in_it(shared_data):
    """An MMLU hit was named `0`..`14041`, its position among all subjects: no one can look that up."""
    items = {it.item_id: it for it in load_items(REGISTRY["mmlu"], shared_data / "benchmarks")}
    with open(shared_data / "benchmarks/mmlu/test/high_school_biology_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    item = items["high_school_biology/17"]
    assert item.parts == (rows[17]["question"], *(rows[17][f"choice{k}"] for k in range(4)))
    assert f"high_school_biology/{len(rows) - 1}" in items and f"high_school_biology/{len(rows)}" not in items
    assert "abstract_algebra/0" in items and "0" not in items


def test_hub_rows_of_subjects_and_tasks_get_the_same_ids_as_local_files(monkeypatch, tmp_path):
    """cais/mmlu's rows name their subject; BBH's and MATH's configs are their tasks and subjects."""
    mmlu = REGISTRY["mmlu"]
    rows = [{"question": f"Q{i}?", "subject": s, "choices": ["a", "b"], "answer": 0} for i, s in enumerate("xxyx")]
    assert [it.item_id for it in items_from_rows(mmlu, rows, mmlu.fields)] == ["x/0", "x/1", "y/0", "x/2"]

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: [{"input": f"{config} in", "target": "t"}] * 2)
    bbh = REGISTRY["bbh"]
    hub_ids = [it.item_id for it in items_from_rows(bbh, _hub_rows(bbh), bbh.fields)]
    assert hub_ids[:4] == ["boolean_expressions/0", "boolean_expressions/1", "causal_judgement/0", "causal_judgement/1"]
    (tmp_path / "bbh").mkdir()
    for task in ("boolean_expressions", "causal_judgement"):
        (tmp_path / "bbh" / f"{task}.jsonl").write_text('{"input": "x", "target": "t"}\n' * 2)
    assert [it.item_id for it in load_items(bbh, tmp_path)] == hub_ids[:4]
