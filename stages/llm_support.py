"""What the generation stages share: reaching a named LLM, and the rows they write.

A managed `vllm_server` (one the pipeline starts itself) is started once on the driver, in the
stage's `prepare()`, and shared by every stage of the run that names the same LLM; workers get
its URL, so an actor pool of N workers never starts N servers. The server stops when the driver
exits (the backend's process guard).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import pyarrow as pa

from pipeline.records import DROP_REASON, MESSAGE_TYPE, dumps_meta
from pipeline.stage import StageContext

INSTRUCTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("messages", MESSAGE_TYPE),
        ("generated_by", pa.string()),
        ("parent_id", pa.string()),
        ("source", pa.string()),
        ("meta", pa.string()),
        (DROP_REASON, pa.string()),
    ]
)

PREFERENCE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", MESSAGE_TYPE),
        ("chosen", MESSAGE_TYPE),
        ("rejected", MESSAGE_TYPE),
        ("scores", pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])),
        ("judge", pa.string()),
        ("source", pa.string()),
        ("meta", pa.string()),
        (DROP_REASON, pa.string()),
    ]
)

_SERVERS: dict[str, Any] = {}


def resolve_llm(ctx: StageContext, name: str) -> dict:
    """The `llms:` entry `name`, with a managed server started (once per driver) and given as its URL."""
    config = dict(ctx.llm(name))
    if config.get("backend") != "vllm_server" or config.get("url"):
        return config
    from generators.factory import parse_llm_config, server_process, worker_config

    key = json.dumps(config, sort_keys=True, default=str)
    server = _SERVERS.get(key)
    if server is None or server.gave_up:  # a server that is restarting is still the run's server
        server = _SERVERS[key] = server_process(parse_llm_config(config)).start()
    return worker_config(config, server)


def user_text(messages: Sequence[dict] | None) -> str:
    """The request of an instruction row: its user turns."""
    return "\n\n".join(m["content"] for m in messages or () if m["role"] == "user")


def instruction_row(id: str, messages: list[dict], generated_by: str | None, parent_id: str | None,
                    source: str | None, meta: dict, reason: str | None = None) -> dict:  # fmt: skip
    return {
        "id": id,
        "messages": messages,
        "generated_by": generated_by,
        "parent_id": parent_id,
        "source": source,
        "meta": dumps_meta(meta),
        DROP_REASON: reason,
    }


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def merge_meta(old: str | None, new: dict) -> dict:
    meta = json.loads(old) if old else {}
    meta.update(new)
    return meta


def with_prompt_version(meta: dict, step: str, version: str) -> dict:
    """Record which template made a step of this row: `meta.prompt_version[step] = name@version`."""
    versions = dict(meta.get("prompt_version") or {})
    versions[step] = version
    return {**meta, "prompt_version": versions}
