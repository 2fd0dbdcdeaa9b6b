"""Reading a row's text under a view, and counting its words."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.records import TEXT_VIEWS, View, text_array, text_column, whitespace_tokens


def test_a_view_that_does_not_exist_is_an_error_not_the_conversation():
    """Stages check their `view` when the config loads; a caller's misspelt view is not read as the conversation."""
    batch = pa.table({"messages": [[{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]]})
    assert [text_column(batch, v) for v in TEXT_VIEWS] == [["Q?\n\nA."], ["Q?"], ["A."], ["Q?\n\nA."]]
    assert TEXT_VIEWS == View.__args__
    with pytest.raises(ValueError, match="unknown view 'respnse'; one of text, instruction, response, conversation"):
        text_column(batch, "respnse")


def test_text_array_is_text_column_in_arrow_for_every_kind_of_row():
    """Documents take their column as is (nulls as empty texts, chunks joined); conversations and
    preference pairs, and a table without text, go through `text_column`."""
    docs = pa.table({"text": pa.chunked_array([["a b", None], ["é"]]), "messages": pa.nulls(3)}).drop_columns(["messages"])
    chat = pa.table({"messages": [[{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]],
                     "text": ["ignored"]})
    pair = pa.table({"prompt": [[{"role": "user", "content": "Q"}]], "chosen": [[{"role": "assistant", "content": "good"}]],
                     "rejected": [[{"role": "assistant", "content": "bad"}]], "text": ["t"]})
    for batch in (docs, chat, pair, pa.table({"id": [1, 2]})):
        for view in TEXT_VIEWS:
            assert text_array(batch, view).to_pylist() == text_column(batch, view), (batch.column_names, view)
    assert text_array(docs).to_pylist() == ["a b", "", "é"]


def test_whitespace_tokens_count_words_as_python_splits_them():
    """Padding and empty texts count no word (Arrow's split yields empty pieces there); rows with
    Unicode spaces are split on them, the rest on ASCII whitespace."""
    values = [["two words", "  lead\tand\ntrail  ", None], ["caf\u00e9\u00a0au\u2003lait ", "", " \u00a0 ", "x"]]
    expected = [len((t or "").split()) for chunk in values for t in chunk]
    assert whitespace_tokens(pa.chunked_array(values)).to_pylist() == expected == [2, 3, 0, 3, 0, 0, 1]


def test_a_row_with_a_non_ascii_character_is_split_on_every_code_point_python_splits_on():
    """Each code point but the surrogates between two words, in a row that is not pure ASCII (é), as `str.split`."""
    rows = [f"a{chr(c)}b \u00e9{chr(c)}" for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    assert whitespace_tokens(pa.array(rows)).to_pylist() == [len(row.split()) for row in rows]
