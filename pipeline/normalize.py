"""Turning whatever a reader found into rows of the record schema.

Every reader yields plain dicts; this module decides their kind, maps user field names onto
ours, folds everything else into `meta`, and gives each kind one fixed Arrow schema so blocks
from different files always concatenate. A record that cannot be mapped becomes a quarantined
row (reason in `_drop_reason`, the problem and where it was in `meta`) instead of an error.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import DROP_REASON, DROP_STAGE, MESSAGE_TYPE, dumps_meta, stable_id

_COMMON = [("source", pa.string()), ("meta", pa.string()), (DROP_REASON, pa.string()), (DROP_STAGE, pa.string())]

SCHEMAS = {
    "document": pa.schema([("id", pa.string()), ("text", pa.string()), ("url", pa.string()), ("domain", pa.string())] + _COMMON),
    "html": pa.schema([("id", pa.string()), ("html", pa.binary()), ("url", pa.string()), ("domain", pa.string())] + _COMMON),
    "instruction": pa.schema(
        [("id", pa.string()), ("messages", MESSAGE_TYPE), ("generated_by", pa.string()), ("parent_id", pa.string())] + _COMMON
    ),
    "preference": pa.schema(
        [("id", pa.string()), ("prompt", MESSAGE_TYPE), ("chosen", MESSAGE_TYPE), ("rejected", MESSAGE_TYPE)] + _COMMON
    ),
}

READ_STAGE = "00-read"


def detect_kind(record: dict, fields: dict[str, str]) -> str:
    """The record kind of a sample record: what an input's `kind: auto` means."""
    has = lambda key: fields.get(key, key) in record  # noqa: E731
    if has("chosen") and has("rejected"):
        return "preference"
    if has("messages") or has("instruction") or (has("prompt") and any(k in record for k in ("response", "completion", "output"))):
        return "instruction"
    return "document"


def domain_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


class Normalizer:
    """Maps raw dicts of one input onto one record kind."""

    def __init__(self, kind: str, source: str, fields: dict[str, str] | None = None):
        self.kind = kind
        self.source = source
        self.fields = fields or {}
        self.schema = SCHEMAS[kind]

    def _get(self, record: dict, key: str, default: Any = None) -> Any:
        return record.pop(self.fields.get(key, key), default)

    def row(self, record: dict, where: dict | None = None) -> dict:
        """One schema row, or a quarantined row if the record lacks what its kind needs.

        `where` (path, line or record number) goes into a quarantined row's `meta` together with
        the record's own id and keys, taken before any field is mapped: that is what lets a user
        find the record in the input and see what it had instead.
        """
        where = where or {}
        if not isinstance(record, dict):
            return self.quarantine("not_an_object", {**where, "value": repr(record)[:200]}, record)
        try:
            return getattr(self, f"_{self.kind}")(dict(record))
        except _Missing as e:
            given = record.get(self.fields.get("id", "id"))
            origin = {**where, "keys": sorted(map(str, record))[:50], **e.found}
            if given is not None:
                origin["id"] = str(given)
            return self.quarantine(f"{e.reason}:{e}", origin, record)

    def _document(self, r: dict) -> dict:
        text = self._get(r, "text")
        if text is not None and not isinstance(text, str):  # a number, a list of paragraphs: not guessed at
            raise _WrongType("text", text)
        if text is None:
            raise _Missing("text")
        url = _str_or_none(self._get(r, "url"))
        given = self._get(r, "id")
        return {
            "id": str(given) if given is not None else stable_id(url, text),
            "text": text,
            "url": url,
            "domain": _str_or_none(self._get(r, "domain")) or domain_of(url),
            "source": _str_or_none(self._get(r, "source")) or self.source,
            "meta": _meta(self._get(r, "meta"), r),
        }

    def _html(self, r: dict) -> dict:
        """Raw pages; a WARC record's own id makes two captures of the same page two rows."""
        html = r.pop("html")
        url = r.pop("url", None)
        return {
            "id": r.pop("id", None) or stable_id(r.get("warc_record_id") or url, html),
            "html": html,
            "url": url,
            "domain": domain_of(url),
            "source": self.source,
            "meta": _meta(None, r),
        }

    def _instruction(self, r: dict) -> dict:
        messages = self._get(r, "messages")
        if messages is None:
            messages = _messages_from_pairs(r, self.fields)
        messages = _clean_messages(messages)
        given = self._get(r, "id")
        return {
            "id": str(given) if given is not None else stable_id(*(m["content"] for m in messages)),
            "messages": messages,
            "generated_by": _str_or_none(self._get(r, "generated_by")) or "human",
            "parent_id": _str_or_none(self._get(r, "parent_id")),
            "source": _str_or_none(self._get(r, "source")) or self.source,
            "meta": _meta(self._get(r, "meta"), r),
        }

    def _preference(self, r: dict) -> dict:
        chosen, rejected = self._get(r, "chosen"), self._get(r, "rejected")
        prompt = self._get(r, "prompt")
        if isinstance(chosen, str) and isinstance(rejected, str) and prompt is None:
            prompt, chosen, rejected = split_dialogues(chosen, rejected)
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        chosen = [{"role": "assistant", "content": chosen}] if isinstance(chosen, str) else chosen
        rejected = [{"role": "assistant", "content": rejected}] if isinstance(rejected, str) else rejected
        prompt, chosen, rejected = (_clean_messages(x) for x in (prompt, chosen, rejected))
        given = self._get(r, "id")
        return {
            "id": str(given) if given is not None else stable_id(prompt, chosen, rejected),
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "source": _str_or_none(self._get(r, "source")) or self.source,
            "meta": _meta(self._get(r, "meta"), r),
        }

    def from_arrow(self, table: pa.Table | None) -> pa.Table | None:
        """Documents parsed by Arrow, normalised column by column; None where the rows need a look one by one
        (another kind, a missing or non-string text, nested ids)."""
        if table is None or self.kind != "document":
            return None
        name = lambda key: self.fields.get(key, key)  # noqa: E731
        text_col = name("text")
        if text_col not in table.column_names or not pa.types.is_string(table.schema.field(text_col).type) \
                or table.column(text_col).null_count:
            return None
        n = table.num_rows
        text = table.column(text_col)
        url = _string_column(table, name("url"), n)
        given_id = _string_column(table, name("id"), n)
        ids = given_id.to_pylist()
        if given_id.null_count:
            ids = [i if i is not None else stable_id(u, t)
                   for i, u, t in zip(ids, url.to_pylist(), text.to_pylist())]
        domain = _string_column(table, name("domain"), n)
        if domain.null_count == n:
            domain = _hosts(url)
        source = _string_column(table, name("source"), n)
        if source.null_count == n:
            source = pa.array([self.source] * n, pa.string())
        used = {text_col, name("url"), name("id"), name("domain"), name("source")}
        rest = [c for c in table.column_names if c not in used]
        meta = ([_meta(r.pop("meta", None), r) for r in table.select(rest).to_pylist()] if rest else ["{}"] * n)
        columns = {"id": pa.array(ids, pa.string()), "text": text, "url": url, "domain": domain, "source": source,
                   "meta": pa.array(meta, pa.string()), DROP_REASON: pa.nulls(n, pa.string()),
                   DROP_STAGE: pa.nulls(n, pa.string())}
        return pa.table(columns, schema=self.schema)

    def quarantine(self, reason: str, where: dict, record: Any = None) -> dict:
        """A row that only says why the input could not be read, and where; its id covers the record
        itself, so two different bad records never share one."""
        row = {name: None for name in self.schema.names}
        row.update(
            id=stable_id(self.source, reason, dumps_meta(where), dumps_meta({"record": record})),
            source=self.source,
            meta=dumps_meta(where),
        )
        row[DROP_REASON] = reason
        row[DROP_STAGE] = READ_STAGE
        return row

    def table(self, rows: Iterable[dict]) -> pa.Table:
        return pa.Table.from_pylist(list(rows), schema=self.schema)


class _Missing(Exception):
    reason = "missing_field"
    found: dict = {}


class _WrongType(_Missing):
    """The field is there, with a value that is not text: the quarantine says so, and what it held."""

    reason = "not_a_string"

    def __init__(self, field: str, value: Any):
        super().__init__(field)
        self.found = {"type": type(value).__name__, "value": repr(value)[:200]}


def _string_column(table: pa.Table, name: str, n: int) -> pa.ChunkedArray | pa.Array:
    if name not in table.column_names:
        return pa.nulls(n, pa.string())
    column = table.column(name)
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(?P<host>\[[^\]]*\]|[^/?#:]*)"


def _hosts(url) -> pa.Array:
    """`domain_of` for a whole column: the lower-cased host of each URL, null where there is none."""
    host = pc.struct_field(pc.extract_regex(pc.fill_null(url, ""), _HOST), "host")
    host = pc.utf8_lower(pc.replace_substring_regex(host, r"[\[\]]", ""))
    return pc.if_else(pc.equal(host, ""), pa.scalar(None, pa.string()), host)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _meta(given: Any, rest: dict) -> str:
    meta = dict(given) if isinstance(given, dict) else ({"meta": given} if given is not None else {})
    meta.update(rest)
    return dumps_meta(meta)


def _messages_from_pairs(r: dict, fields: dict[str, str]) -> list[dict]:
    """Alpaca (`instruction`/`input`/`output`), Self-Instruct seeds (`instances`) and prompt/response pairs."""
    instruction = r.pop(fields.get("instruction", "instruction"), None) or r.pop(fields.get("prompt", "prompt"), None)
    if not isinstance(instruction, str):
        raise _Missing("messages")
    extra_input = r.pop("input", None)
    output = r.pop(fields.get("response", "output"), None) or r.pop("response", None) or r.pop("completion", None)
    instances = r.get("instances")
    if output is None and isinstance(instances, list) and instances and isinstance(instances[0], dict):
        extra_input = extra_input or instances[0].get("input")
        output = instances[0].get("output")
    user = instruction if not extra_input else f"{instruction}\n\n{extra_input}"
    messages = [{"role": "user", "content": user}]
    if output:
        messages.append({"role": "assistant", "content": str(output)})
    return messages


def _clean_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise _Missing("messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise _Missing("messages.role/content")
        out.append({"role": str(m["role"]), "content": "" if m["content"] is None else str(m["content"])})
    return out


_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_dialogue(text: str) -> list[dict]:
    """The `\\n\\nHuman: ... \\n\\nAssistant: ...` format of Anthropic's HH-RLHF, as chat messages."""
    parts = _TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return messages


def split_dialogues(chosen: str, rejected: str) -> tuple[list, list, list]:
    """Two whole dialogues that share a prompt -> (prompt, chosen reply, rejected reply)."""
    c, r = parse_dialogue(chosen), parse_dialogue(rejected)
    if not c or not r:
        raise _Missing("chosen/rejected dialogue")
    return c[:-1], c[-1:], r[-1:]
