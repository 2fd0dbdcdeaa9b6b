"""Reading a row's text under a view."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.records import TEXT_VIEWS, View, text_column


def test_a_view_that_does_not_exist_is_an_error_not_the_conversation():
    """Stages check their `view` when the config loads; a caller's misspelt view is not read as the conversation."""
    batch = pa.table({"messages": [[{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]]})
    assert [text_column(batch, v) for v in TEXT_VIEWS] == [["Q?\n\nA."], ["Q?"], ["A."], ["Q?\n\nA."]]
    assert TEXT_VIEWS == View.__args__
    with pytest.raises(ValueError, match="unknown view 'respnse'; one of text, instruction, response, conversation"):
        text_column(batch, "respnse")
