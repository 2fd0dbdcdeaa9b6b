"""A row's texts scanned as one, and the way back from a match to the field it was found in.

A row may hold several texts: a chat's messages, a preference pair's prompt, chosen and rejected
replies. They are scanned as one text, joined by a blank line, so that an item split over them (the
question in the prompt, its answer in `chosen`) is one item with its whole coverage, as it would be
in a document. Each span found is then cut at the texts' boundaries and given in the offsets of the
text it lies in, named by its field (`text`, or a message column and the message's index): that is
what the `contamination` column records, what `remove_spans` cuts and what the report quotes.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

SEPARATOR = "\n\n"


@dataclasses.dataclass(frozen=True)
class Located:
    """A span in one field of a row: [start, end) in that field's own text."""

    field: str  # `text`, or the column holding the message: messages, prompt, chosen, rejected
    message: int | None  # the message's index in that column; None for a document's text
    start: int
    end: int

    def as_record(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RowText:
    """The texts of one row joined into the text that is scanned, and where each of them lies in it."""

    text: str
    pieces: tuple[tuple[str, int | None, int, int], ...]  # (field, message, start, end) in `text`

    @classmethod
    def join(cls, texts: Sequence[tuple[str, int | None, str]]) -> "RowText":
        """From `records.row_texts`' (field, message, text) of one row."""
        pieces, at = [], 0
        for field, message, text in texts:
            pieces.append((field, message, at, at + len(text)))
            at += len(text) + len(SEPARATOR)
        return cls(SEPARATOR.join(t for _, _, t in texts), tuple(pieces))

    def locate(self, spans: Iterable[tuple[int, int]]) -> list[Located]:
        """Spans of the joined text in the fields they lie in; one crossing a boundary gives a piece in each."""
        out = []
        for start, end in spans:
            for field, message, a, b in self.pieces:
                if start < b and end > a:
                    out.append(Located(field, message, max(start, a) - a, min(end, b) - a))
        return out

    def quote(self, span: Located) -> str:
        """The text of a located span."""
        a = next(a for field, message, a, _ in self.pieces if (field, message) == (span.field, span.message))
        return self.text[a + span.start:a + span.end]


def longest(spans: Sequence[Located]) -> Located:
    """The longest span, the first of equals in the row: the one a report shows and whose field names a hit."""
    return max(spans, key=lambda s: s.end - s.start)  # max keeps the first of equals
