"""Reading a row's text under a view, and counting its words."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from pipeline.records import _WIDE_SPACES, TEXT_VIEWS, View, text_array, text_column, whitespace_tokens


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


def test_word_counts_equal_pythons_on_random_text_in_every_layout_arrow_gives():
    """Rows mixing ASCII whitespace and control characters, wide spaces, and characters whose UTF-8
    shares a wide space's first bytes (\u2019 and \u00a9 against \u2009 and \u00a0), as slices at
    an offset and as large strings: the counts are `str.split`'s, and a row's first word is counted
    whatever the row before it ended with."""
    rng = random.Random(0)
    alphabet = "ab\t\n\x0b\x0c\r\x1c\x1f \x00\x08\x0e\x1b\x7f\x85\xa0\xa9\u1680\u2009\u200b\u2019\u2028\u202f\u3000\u3001\U0001f600"
    rows = [None if rng.random() < 0.05 else "".join(rng.choices(alphabet, k=rng.randrange(0, 12))) for _ in range(5000)]
    expected = [len((r or "").split()) for r in rows]
    for kind in (pa.string(), pa.large_string()):
        arr = pa.array(rows, kind)
        assert whitespace_tokens(arr).to_pylist() == expected
        for start, length in ((1, 4000), (2500, 2500), (4999, 1), (3000, 0)):
            assert whitespace_tokens(arr.slice(start, length)).to_pylist() == expected[start:start + length]
    assert whitespace_tokens(pa.array([None, None], pa.string())).to_pylist() == [0, 0]


def test_the_wide_spaces_are_every_code_point_beyond_ascii_python_splits_on():
    assert set(_WIDE_SPACES) == {chr(c) for c in range(0x80, 0x110000) if chr(c).isspace()}


def test_a_row_with_a_non_ascii_character_is_split_on_every_code_point_python_splits_on():
    """Each code point but the surrogates between two words, in a row that is not pure ASCII (é), as `str.split`."""
    rows = [f"a{chr(c)}b \u00e9{chr(c)}" for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    assert whitespace_tokens(pa.array(rows)).to_pylist() == [len(row.split()) for row in rows]
