"""What the generation stages share: reaching a named LLM, and the rows they write.

A managed `vllm_server` (one the pipeline starts itself) is started once on the driver, in the
stage's `prepare()`, and shared by every stage of the run that names the same LLM; workers get
its URL, so an actor pool of N workers never starts N servers. The server stops when the driver
exits (the backend's process guard). A remote server (`url:`) is asked in the stages' `check()`,
whether it serves the model: `pipeline validate` sees a wrong URL or model name, and `pipeline run`
reports it before Ray starts rather than after Ray's start-up. During the run, a client whose
endpoint keeps failing stops the run (`endpoint_failures_stop_run`). A stage opens its clients in
`setup()` and closes them in `teardown()`, when its worker stops.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa

from generators.client import EndpointFailing
from pipeline import node_paths
from pipeline.errors import RunFailed, UserError
from pipeline.normalize import SCHEMAS
from pipeline.records import DROP_REASON, dumps_meta, loads_meta
from pipeline.stage import Problem, StageContext

# Generated rows have the schema of rows read from a file of their kind, so the two always concatenate;
# a judged pair adds its scores and the judge after the messages.
INSTRUCTION_SCHEMA = SCHEMAS["instruction"]
PREFERENCE_SCHEMA = (SCHEMAS["preference"]
                     .insert(4, pa.field("scores", pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])))
                     .insert(5, pa.field("judge", pa.string())))

_SERVERS: dict[str, Any] = {}
# Each remote server's answer (None: it serves the model), so an `llms:` entry is asked once per
# process: validate and run's checks, and every stage naming it, share one request.
_SERVER_PROBLEMS: dict[str, str | None] = {}


def llm_problems(ctx: StageContext, uses: Iterable[tuple[str | None, tuple]]) -> list[Problem]:
    """A stage's `check()` of the LLMs it names, given as (name, the option naming it) pairs, None
    for an option left unset: a name missing from `llms:`, or a remote server that cannot serve the
    model. Each name is reported once, at its first option."""
    problems, seen = [], set()
    for name, option in uses:
        if name is None or name in seen:
            continue
        seen.add(name)
        if name not in ctx.llms:
            known = ", ".join(sorted(ctx.llms)) or "none defined"
            problems.append(Problem(f"llm '{name}' is not defined under 'llms:' ({known})", option))
        elif why := _server_problem(ctx.llms[name]):
            problems.append(Problem(f"llm '{name}': {why}", option))
    return problems


def structured_problems(ctx: StageContext, structured: str, name: str | None) -> list[Problem]:
    """`structured: on` with an LLM whose backend cannot guide its decoding (only a vLLM server can) would
    fail every request once the run is under way; it is one line before Ray starts instead."""
    config = ctx.llms.get(name) if name else None
    if structured != "on" or config is None or config.get("backend") == "vllm_server":
        return []
    return [Problem(f"structured: on needs guided decoding, which only a vllm_server backend gives; llm '{name}' "
                    f"is {config.get('backend')} (use structured: auto to parse its free text)", ("structured",))]


def _server_problem(config: dict) -> str | None:
    """Why the remote server of an `llms:` entry cannot serve its model (one quick request, no
    retries), or None; a managed server is started serving the configured name, so it is not asked."""
    if config.get("backend") != "vllm_server" or not config.get("url"):
        return None
    key = _entry_key(config)
    if key not in _SERVER_PROBLEMS:
        from generators.backends.vllm_server import ServerUnusable, check_server
        from generators.factory import parse_llm_config

        try:
            check_server(parse_llm_config(config))
            _SERVER_PROBLEMS[key] = None
        except ServerUnusable as e:
            _SERVER_PROBLEMS[key] = str(e)
    return _SERVER_PROBLEMS[key]


def resolve_llm(ctx: StageContext, name: str) -> dict:
    """The `llms:` entry `name`, with a managed server started (once per driver) and given as its URL. On a
    cluster, every node is asked whether it reaches the URL (where it listens, `host:`, is known only once
    it has started): the workers' requests would fail otherwise, as if the server were down."""
    config = dict(ctx.llm(name))
    if config.get("backend") != "vllm_server" or config.get("url"):
        return config
    from generators.factory import parse_llm_config, server_process, worker_config

    key = _entry_key(config)
    server = _SERVERS.get(key)
    started = server is None or server.gave_up  # a server that is restarting is still the run's server
    if started:
        server = _SERVERS[key] = server_process(parse_llm_config(config)).start()
    worker = worker_config(config, server, node_paths.this_machine())
    if started and (why := node_paths.server_unreached(worker["url"])):
        raise UserError(f"llm '{name}': the server the pipeline started answers here at {worker['url']} but not "
                        f"from {why}, whose workers send the requests: set `host:` to an address of this machine "
                        "that every node reaches (docs/cluster.md)")
    return worker


def _entry_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


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
    meta = loads_meta(old)
    meta.update(new)
    return meta


def with_prompt_version(meta: dict, step: str, version: str) -> dict:
    """Record which template made a step of this row: `meta.prompt_version[step] = name@version`."""
    versions = dict(meta.get("prompt_version") or {})
    versions[step] = version
    return {**meta, "prompt_version": versions}
