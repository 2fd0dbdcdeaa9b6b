"""What the generation stages share: reaching a named LLM, and the rows they write.

A managed `vllm_server` (one the pipeline starts itself) is started once on the driver, in the
stage's `prepare()`, and shared by every stage of the run that names the same LLM; workers get
its URL, so an actor pool of N workers never starts N servers. The server stops when the driver
exits (the backend's process guard). A remote server (`url:`) is asked once per run, on the
driver, whether it serves the model, so a wrong URL or model name fails before any work is sent;
during the run, a client whose endpoint keeps failing stops the run (`endpoint_failures_stop_run`).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Sequence

import pyarrow as pa

from generators.client import EndpointFailing
from pipeline.errors import RunFailed, UserError
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
_CHECKED: set[str] = set()  # remote servers found serving their model, so each is asked once per run


def resolve_llm(ctx: StageContext, name: str) -> dict:
    """The `llms:` entry `name`: a remote server checked, a managed one started (each once per driver)."""
    config = dict(ctx.llm(name))
    if config.get("backend") != "vllm_server":
        return config
    from generators.factory import parse_llm_config, server_process, worker_config

    key = json.dumps(config, sort_keys=True, default=str)
    if config.get("url"):
        if key not in _CHECKED:
            _check_remote(ctx, name, parse_llm_config(config))
            _CHECKED.add(key)
        return config
    server = _SERVERS.get(key)
    if server is None or server.gave_up:  # a server that is restarting is still the run's server
        server = _SERVERS[key] = server_process(parse_llm_config(config)).start()
    return worker_config(config, server)


def _check_remote(ctx: StageContext, name: str, config) -> None:
    from generators.backends.vllm_server import ServerUnusable, check_server

    try:
        check_server(config)
    except ServerUnusable as e:
        raise UserError(f"stage {ctx.stage_id}: llm '{name}': {e}") from None


@contextlib.contextmanager
def endpoint_failures_stop_run(ctx: StageContext) -> Iterator[None]:
    """Inside it, a client whose requests keep failing ends the run (exit 1) instead of dropping every row."""
    try:
        yield
    except EndpointFailing as e:
        raise RunFailed(f"stage {ctx.stage_id}: {e}") from None


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
