"""What every stage knows of a row: the engine's internal columns, and the helpers to read and mark rows.

Rows are Arrow rows. Three kinds share one family of columns: documents (`text`), instructions
(`messages`) and preferences (`prompt`/`chosen`/`rejected`); each kind's schema, as a reader
gives it, is `normalize.SCHEMAS`. A dropped row is never removed by a stage: it gets a reason in
`DROP_REASON` and the engine routes it to rejects, which is what makes `in = kept + dropped`
checkable; `live_mask` is the one test of whether a row is still alive.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Literal, Sequence, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DROP_REASON = "_drop_reason"
DROP_STAGE = "_drop_stage"
TOKENS = "_tokens"
CHARS = "_chars"
INTERNAL_COLUMNS = (DROP_REASON, DROP_STAGE, TOKENS, CHARS)

MESSAGE_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))

# What a text filter reads from a row: a document's `text`, or a view of an instruction's messages.
# Stages type their `view` option with it, so a misspelt view is refused when the config loads.
View = Literal["text", "instruction", "response", "conversation"]
TEXT_VIEWS: tuple[str, ...] = get_args(View)


def stable_id(*parts: Any) -> str:
    """A content-derived id, so the same input gives the same id in every run and on every worker."""
    h = hashlib.blake2b(digest_size=10)
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        else:
            h.update(str(part if part is not None else "").encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


def _picked(messages: Sequence[dict] | None, view: str) -> list[int]:
    """The positions of the messages a view reads: the first user message, the first assistant message,
    or every message but the system prompt."""
    roles = [m["role"] for m in messages or ()]
    first = {"instruction": "user", "response": "assistant"}.get(view)
    if first:
        return [roles.index(first)] if first in roles else []
    return [i for i, role in enumerate(roles) if role != "system"]


def messages_text(messages: Sequence[dict] | None, view: str) -> str:
    """Flatten chat messages into the text a text filter should look at."""
    return "\n\n".join(messages[i]["content"] or "" for i in _picked(messages, view))


def _check_view(view: str) -> None:
    if view not in TEXT_VIEWS:  # stages' options are checked at load; this is a caller's mistake
        raise ValueError(f"unknown view {view!r}; one of {', '.join(TEXT_VIEWS)}")


def text_column(batch: pa.Table, view: View = "text") -> list[str]:
    """The text of every row of a batch under a view: `text` for documents, a view of `messages`, or a
    view of a preference pair's prompt and chosen answer (`JUDGED_PREFERENCE_COLUMNS`).

    `view="text"` on instruction and preference rows means the whole conversation, so filters written
    for documents work on instruction data unchanged.
    """
    _check_view(view)
    if "messages" in batch.column_names and (view != "text" or "text" not in batch.column_names):
        v = "conversation" if view == "text" else view
        return [messages_text(m, v) for m in batch.column("messages").to_pylist()]
    if _is_preference(batch.column_names):
        return ["\n\n".join(text for column, _, text in texts if column in JUDGED_PREFERENCE_COLUMNS)
                for texts in row_texts(batch, view)]
    if "text" not in batch.column_names:
        return [""] * batch.num_rows
    return [t or "" for t in batch.column("text").to_pylist()]


def text_array(batch: pa.Table, view: View = "text") -> pa.Array:
    """`text_column` as an Arrow string array, for the vectorised filters. For documents it is the text
    column itself: no Python string made per row only to be encoded back (3 of the 65 us a 300-word
    document costs dedup's keys pass)."""
    if view == "text" and "text" in batch.column_names and "messages" not in batch.column_names \
            and not _is_preference(batch.column_names):
        texts = batch.column("text")
        return pc.fill_null(texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts, "")
    return pa.array(text_column(batch, view), pa.string())


# Which message columns of a preference row a view reads: the prompt asks, `chosen` and `rejected` answer.
_PREFERENCE_VIEWS = {"instruction": ("prompt",), "response": ("chosen", "rejected")}

# What a filter judges a preference pair by: the conversation the model is trained towards. A rejected
# answer is meant to be worse, so a language, quality or heuristic filter must not drop the pair for
# it; a benchmark leak in it is still a leak, which is why contamination reads `row_texts` instead.
JUDGED_PREFERENCE_COLUMNS = ("prompt", "chosen")


def _is_preference(names: Sequence[str]) -> bool:
    return "chosen" in names and "rejected" in names


def row_texts(batch: pa.Table, view: View = "text") -> list[list[tuple[str, int | None, str]]]:
    """Every text of every row under a view, each named by where it is: (column, message index, text).

    `text_column` gives a row one text; this keeps a row's texts apart, so that what is found in one can be
    traced to its column and message. A document gives its `text` (message index None); an instruction row
    the messages of `messages` the view reads (`messages_text`'s rule, so joining them gives
    `text_column`'s text); a preference row those of `prompt`, `chosen` and `rejected`, where the
    instruction is read in `prompt` and the response in `chosen` and `rejected`.
    """
    _check_view(view)
    names = batch.column_names
    if "messages" in names and (view != "text" or "text" not in names):
        columns: tuple[str, ...] = ("messages",)
    elif _is_preference(names):
        columns = _PREFERENCE_VIEWS.get(view, ("prompt", "chosen", "rejected"))
    elif "text" in names:
        return [[("text", None, t or "")] for t in batch.column("text").to_pylist()]
    else:
        return [[] for _ in range(batch.num_rows)]
    picked_view = "conversation" if view == "text" else view
    values = [batch.column(c).to_pylist() if c in names else [None] * batch.num_rows for c in columns]
    return [[(c, i, messages[i]["content"] or "") for c, messages in zip(columns, row) for i in _picked(messages, picked_view)]
            for row in zip(*values)]


# The code points beyond ASCII that `str.split()` splits on (no-break, em, ideographic spaces...), by
# the length of their UTF-8; a test checks them against Python's `isspace` over every code point.
_WIDE_SPACES = "\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_WIDE_SPACE_CODES = {n: np.array([int.from_bytes(c.encode()) for c in _WIDE_SPACES if len(c.encode()) == n], np.uint32)
                     for n in (2, 3)}


def whitespace_tokens(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Whitespace word counts (Python's `len(text.split())`): the default token measure of run
    statistics, on every row of every pass.

    Counted on the UTF-8 bytes: a word is a run of bytes outside the whitespace characters, and the
    words of a row are the word starts between its offsets. Arrow's split, which builds every piece
    only to count them, took four to five times as long on documents (benchmarks/bench_word_counts.py).
    """
    texts = pc.fill_null(texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts, "")
    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    raw = np.frombuffer(texts.buffers()[1], width, len(texts) + 1, texts.offset * np.dtype(width).itemsize)
    offsets = raw.astype(np.int64) - raw[0]
    if not offsets[-1]:
        return pa.array(np.zeros(len(texts), np.int64))
    word = _word_bytes(np.frombuffer(texts.buffers()[2], np.uint8, int(offsets[-1]), int(raw[0])))
    start = np.empty_like(word)
    start[0] = word[0]
    np.greater(word[1:], word[:-1], out=start[1:])  # a word byte after a space
    firsts = offsets[:-1][offsets[:-1] < offsets[1:]]
    start[firsts] = word[firsts]  # a row's first byte starts a word whatever the row before ended with
    return pa.array(np.diff(np.searchsorted(np.flatnonzero(start), offsets)))


def _word_bytes(data: np.ndarray) -> np.ndarray:
    """Whether each byte of UTF-8 text belongs to a word: not one of ASCII's ten whitespace characters
    (tab to carriage return, the separators 0x1c-0x1f, space), nor part of a wider space."""
    word = (data > 32) | ((data < 28) & ((data < 9) | (data > 13)))
    leads = np.flatnonzero((data == 0xC2) | ((data >= 0xE1) & (data <= 0xE3)))  # the first bytes of every wide space
    for n, codes in _WIDE_SPACE_CODES.items():
        at = leads[leads <= len(data) - n]
        code = sum(data[at + k].astype(np.uint32) << np.uint32(8 * (n - 1 - k)) for k in range(n))
        at = at[np.isin(code, codes)]
        for k in range(n):
            word[at + k] = False
    return word


def set_column(batch: pa.Table, name: str, values: pa.Array | Iterable, type: pa.DataType | None = None) -> pa.Table:
    """Add or replace a column."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values), type=type)
    if name in batch.column_names:
        return batch.set_column(batch.column_names.index(name), name, arr)
    return batch.append_column(name, arr)


def live_mask(batch: pa.Table) -> pa.BooleanArray:
    """True for each row no stage has dropped: the rows a stage works on, counts and writes as kept.

    A batch without the drop column (straight from a reader, or a block of another stage's making)
    has every row alive.
    """
    if DROP_REASON not in batch.column_names:
        return pa.array(np.ones(batch.num_rows, dtype=bool))
    return pc.is_null(batch.column(DROP_REASON)).combine_chunks()


def split_live(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(the live rows, the rows dropped before), by `live_mask`; a batch without the drop column is not copied."""
    if DROP_REASON not in batch.column_names:
        return batch, batch.slice(0, 0)
    live = live_mask(batch)
    return batch.filter(live), batch.filter(pc.invert(live))


def drop_rows(batch: pa.Table, reasons: Sequence[str | None]) -> pa.Table:
    """Mark rows as dropped: `reasons[i]` is None to keep row i, or the name of the rule that dropped it.

    Rows already dropped keep their first reason, so a reason always names the first rule that fired.
    """
    if DROP_REASON in batch.column_names:
        old = batch.column(DROP_REASON).to_pylist()
        reasons = [o if o is not None else r for o, r in zip(old, reasons)]
    return set_column(batch, DROP_REASON, pa.array(list(reasons), type=pa.string()))


def dumps_meta(meta: dict | None) -> str:
    """`meta` travels as a JSON string so that rows from different sources always share one schema."""
    return json.dumps(meta or {}, ensure_ascii=False, sort_keys=True, default=str)


def loads_meta(meta: str | None) -> dict:
    """A row's `meta` as a dict; a row without one has an empty one."""
    return json.loads(meta) if meta else {}


def field_values(batch: pa.Table, name: str) -> list:
    """A column's values, or else each row's `name` in `meta` (None where it has none): the reader keeps
    there the fields of an input that have no column of their own (a JSONL file's `category`), and an
    option that names a field means either."""
    if name in batch.column_names:
        return batch.column(name).to_pylist()
    if "meta" not in batch.column_names:
        return [None] * batch.num_rows
    return [loads_meta(m).get(name) for m in batch.column("meta").to_pylist()]


def field_numbers(batch: pa.Table, name: str) -> np.ndarray:
    """A numeric field (`field_values`) as floats, NaN where a row has none or it is not a number."""
    if name in batch.column_names:
        return pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False)
    numbers = (v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in field_values(batch, name))
    return np.fromiter(numbers, dtype=np.float64, count=batch.num_rows)
