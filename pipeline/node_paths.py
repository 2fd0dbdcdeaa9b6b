"""Local paths and LLM servers on a cluster of several nodes: each node must reach them, or the work fails deep
inside Ray.

A cluster's nodes share no disk unless a filesystem is mounted at the same path on each. On such a
cluster a run's local input failed in a worker's read ("Failed to open local file", with Ray's advice
on retries), and a local output failed after its first pass, whose counts were already short, when the
next pass read checkpoint pieces that another node had written to its own disk. So once Ray is up and
before any work, on a cluster of more than one node, every live node is asked whether it sees the local
files the work reads (the inputs, and what the stages' workers open: a model, a block list), and
whether it shares the local folder it writes to, the latter through a file the driver writes there (a
folder of the same name on each node's own disk does not pass), whether its own credentials let it
read the run's objects and write its output in object storage, and whether it reaches the vLLM
servers the workers send requests to. A path or server some node does not reach is one line naming it
and the nodes.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.error
import urllib.request
import uuid

import pyarrow.fs as pafs
from pydantic import BaseModel

from generators.llm_config import LLMConfig, VLLMServerConfig
from pipeline import storage
from pipeline.config import ValidatedRun, in_file_order
from pipeline.errors import UserError
from pipeline.preflight import input_path
from pipeline.storage import Location
from pipeline.yaml_source import dotted

SERVER_TIMEOUT_S = 5.0
ADVICE = ("a cluster's nodes share no disk unless a filesystem is mounted at the same path on each: "
          "use object storage (s3://...) or such a filesystem (docs/cluster.md)")


def check_run(run: ValidatedRun) -> None:
    """On a cluster of several nodes: a run's local input files, the files its stages' workers open and the
    folders they write to (the output's, an index's), and the LLM servers they send requests to, each
    problem at its config line."""
    if _live_nodes() < 2:
        return
    llms = _llms_used(run)
    read, written = _stage_paths(run, llms)
    inputs = _input_files(run)
    files = [(key, f.path) for key, f in inputs if f.is_local] + [(key, path) for key, path in read if os.path.exists(path)]
    out = storage.locate(run.config.output.path)
    folders = [(key, path, storage.locate(path)) for key, path in written if not _inside(path, out)]  # (key, path, probed)
    if out.is_local:
        folders.insert(0, (("output", "path"), out.path, out / ".pipeline"))  # probed where the checkpoints go
    files_unseen, folders_unseen = unseen([path for _, path in files], [probed for *_, probed in folders])
    named = files + [(key, path) for key, path, _ in folders]
    problems = [(key, f"{run.located.where(key)}: {dotted(key)}: {said(path, nodes)}")
                for (key, path), nodes in zip(named, files_unseen + folders_unseen) if nodes]
    problems += [(key, f"{run.located.where(key)}: {dotted(key)}: {why}")
                 for key, why in _store_problems(inputs, out) + _server_problems(llms) + _cache_problems(llms)]
    if problems:
        raise UserError(in_file_order(_first_per_key(problems), run.located))


def unseen(files: list[str], shared: list[Location] = ()) -> tuple[list[list[str]], list[list[str]]]:
    """The live nodes that do not see each of the local `files`, and for each local folder in `shared`
    those that do not share it; nothing is asked of a cluster of one node."""
    from pipeline.ray_session import on_each_node

    if _live_nodes() < 2 or not (files or shared):
        return [[] for _ in files], [[] for _ in shared]
    probes = [folder / f".node-probe-{uuid.uuid4().hex[:12]}" for folder in shared]
    for folder, probe in zip(shared, probes):
        folder.make_dir()
        probe.write_bytes(b"")
    try:
        missing = on_each_node(_missing, files + [probe.path for probe in probes])
    finally:
        for probe in probes:
            probe.remove()
    nodes = [sorted(node for node, absent in missing.items() if i in absent) for i in range(len(files) + len(probes))]
    return nodes[:len(files)], nodes[len(files):]


def said(path: str, nodes: list[str]) -> str:
    return (f"{path} is on this machine's disk, which {_the_nodes(nodes)} {'do' if len(nodes) > 1 else 'does'} "
            f"not see: {ADVICE}")


def _the_nodes(nodes) -> str:
    return f"the Ray node{'s' if len(nodes) > 1 else ''} {', '.join(sorted(nodes))}"


def _refusal(answers: dict[str, dict[int, str]], i: int) -> tuple[str, str] | None:
    """The nodes whose answer says they fail the `i`th thing asked ("the Ray node 10.0.0.7 (id 58ba7024)"),
    and the first of their reasons; None when none does."""
    failed = {node: why[i] for node, why in answers.items() if i in why}
    return (_the_nodes(failed), next(iter(failed.values()))) if failed else None


def _input_files(run: ValidatedRun) -> list[tuple[tuple, Location]]:
    """Each file the inputs name, with its entry's key path (an `hf` dataset is loaded by this process)."""
    named = []
    for i, source in enumerate(run.config.input):
        for j, pattern in enumerate(source.paths if source.format != "hf" else []):
            named += [(input_path(run, i, "paths", j), f) for f in storage.expand([pattern], pattern)]
    return named


def _llms_used(run: ValidatedRun) -> dict[str, LLMConfig]:
    """The `llms:` entries the stages refer to, each validated into its backend's config."""
    used = sorted(set().union(*(stage.llm_names() for stage in run.stages)))
    return {name: LLMConfig.model_validate(run.config.llms[name]) for name in used}


def _stage_paths(run: ValidatedRun, llms: dict[str, LLMConfig]) -> tuple[list[tuple[tuple, str]], list[tuple[tuple, str]]]:
    """The local paths a run's stages' workers open and write to (options marked `storage.READ_ON_EVERY_NODE`
    or `WRITTEN_ON_EVERY_NODE`, an in-process LLM's model), absolute, with their options' key paths; what the
    driver alone reads (a benchmark, a rules file) need not be on the nodes."""
    marked = []
    for i, stage in enumerate(run.stages):
        marked += [(("stages", i, stage.name, *key), value, kind) for key, value, kind in _on_every_node(stage.config)]
        marked += [(("llms", name, "model"), llms[name].model, "read")
                   for name in sorted(stage.llm_names()) if llms[name].loads_on_workers]
    # A store's URI is every node's. Told by its text: locating an s3:// URI without a region asks for the bucket's.
    local = [(key, storage.locate(value).path, kind) for key, value, kind in marked
             if "://" not in value or value.startswith("file://")]
    return ([(key, path) for key, path, kind in local if kind == "read"],
            [(key, path) for key, path, kind in local if kind == "written"])


def _inside(path: str, folder: Location) -> bool:
    return folder.is_local and os.path.commonpath([path, folder.path]) == folder.path


def _on_every_node(options: BaseModel, key: tuple = ()):
    """(key path, value, "read" or "written") of each string option so marked, in sections and lists of them."""
    for name, field in type(options).model_fields.items():
        value = getattr(options, name)
        kind = field.json_schema_extra.get("on_every_node") if isinstance(field.json_schema_extra, dict) else None
        for index, item in enumerate(value) if isinstance(value, list) else [(None, value)]:
            at = (*key, name) if index is None else (*key, name, index)
            if isinstance(item, BaseModel):
                yield from _on_every_node(item, at)
            elif isinstance(item, str) and kind:
                yield at, item, kind


def _store_problems(inputs: list[tuple[tuple, Location]], out: Location) -> list[tuple[tuple, str]]:
    """Object storage that this machine reads and writes and some node cannot, with its own credentials (a node's
    environment, ~/.aws, an instance role): each input entry's first object, read; the output, written to."""
    from pipeline.ray_session import on_each_node

    first_per_entry: dict[tuple, Location] = {}
    for key, f in inputs:
        if not f.is_local:
            first_per_entry.setdefault(key, f)
    firsts = list(first_per_entry.items())
    probe = None if out.is_local else out / ".pipeline" / ".node-probe"
    if not firsts and probe is None:
        return []
    answers = on_each_node(_store_refused, [f.uri for _, f in firsts], probe.uri if probe else None)
    checked = firsts + ([(("output", "path"), out)] if probe else [])
    problems = []
    for i, (key, where) in enumerate(checked):
        if refused := _refusal(answers, i):
            does = "reads" if key[0] == "input" else "writes to"
            problems.append((key, (
                f"{where.uri}: this machine {does} it, {refused[0]} cannot ({refused[1]}): "
                "every node needs the store's credentials (its environment, ~/.aws or an instance role) and endpoint "
                "(docs/cluster.md)")))
    return problems


def _store_refused(uris: list[str], probe: str | None) -> dict[int, str]:
    """On a node: why it cannot read each object, and then why it cannot write the probe object (the output's)."""
    why = {}
    for i, uri in enumerate(uris):
        try:
            if storage.locate(uri).info().type == pafs.FileType.NotFound:
                why[i] = "not found"
        except (OSError, UserError) as e:
            why[i] = storage.first_line(e)
    if probe is not None:
        mine = storage.locate(f"{probe}-{uuid.uuid4().hex[:12]}")
        try:
            mine.write_bytes(b"")
            mine.remove()
        except (OSError, UserError) as e:
            why[len(uris)] = storage.first_line(e)
    return why


def _server_problems(llms: dict[str, LLMConfig]) -> list[tuple[tuple, str]]:
    """The vLLM servers the stages' workers would send requests to that some node cannot reach: a running
    one (`url`) is asked from every node (a localhost URL reaches each node's own machine, which may run
    a server of its own); one the pipeline would start here must not listen on a loopback address when
    some node is on another machine."""
    from pipeline.ray_session import on_each_node

    servers = [(name, llm) for name, llm in llms.items() if isinstance(llm, VLLMServerConfig)]
    started_here = [(name, llm.host) for name, llm in servers if llm.managed and _loopback(llm.host)]
    problems = [(("llms", name), f"the pipeline would start this server here, listening on {host}, which the Ray "
                 "nodes on other machines cannot reach: set `host:` to an address of this machine they reach, or "
                 "start the server yourself and give its `url:` (docs/cluster.md)")
                for name, host in (started_here if started_here and _other_machines() else [])]
    running = [(name, llm.url) for name, llm in servers if not llm.managed]
    answers = on_each_node(_unreached, [url for _, url in running]) if running else {}
    for i, (name, url) in enumerate(running):
        if refused := _refusal(answers, i):
            problems.append((("llms", name, "url"), (
                f"{url} answers this machine but not {refused[0]} ({refused[1]}), whose workers send the requests: "
                "give an address every node reaches (a localhost URL is each node's own machine; docs/cluster.md)")))
    return problems


def server_unreached(url: str) -> str | None:
    """On a cluster of several nodes, which nodes cannot reach the server at `url` and why ("the Ray node
    10.0.0.7 (id 58ba7024) (Connection refused)"); None when all do, or Ray runs on one node or not at all."""
    import ray

    from pipeline.ray_session import on_each_node

    if not ray.is_initialized() or _live_nodes() < 2:
        return None
    refused = _refusal(on_each_node(_unreached, [url]), 0)
    return f"{refused[0]} ({refused[1]})" if refused else None


def this_machine() -> str:
    """The address the cluster's nodes know this machine by (its node's), or loopback without Ray."""
    import ray

    return ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1"


def _cache_problems(llms: dict[str, LLMConfig]) -> list[tuple[tuple, str]]:
    """A response cache on a local folder, when some node is on another machine: each node would keep a
    cache of its own there, so a re-run pays again for what another node had cached, and on a network
    filesystem they shared, the cache's SQLite database is not safe (its WAL needs one machine's memory)."""
    local = [(name, llm.cache_dir) for name, llm in llms.items()
             if llm.cache_dir and storage.locate(llm.cache_dir).is_local]
    return [(("llms", name, "cache_dir"), f"{folder} is a folder on this machine's disk, where the Ray nodes on "
             "other machines cannot share one response cache (each would keep its own; a shared network "
             "filesystem does not keep its SQLite database safe): give an object-storage folder (s3://...), which "
             "every node reaches (docs/cluster.md)")
            for name, folder in (local if local and _other_machines() else [])]


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name, which the nodes resolve as they do
        return False


def _unreached(urls: list[str]) -> dict[int, str]:
    """On a node: why it cannot reach each server root it cannot reach; any HTTP answer, an error too, reaches it."""
    why = {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as the clients: no proxy from the environment
    for i, url in enumerate(urls):
        try:
            opener.open(f"{url}/v1/models", timeout=SERVER_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            pass
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            why[i] = getattr(reason, "strerror", None) or str(reason)
    return why


def _other_machines() -> bool:
    """Whether some live node is on another machine than this one (a node's address is its machine's)."""
    import ray

    here = ray.util.get_node_ip_address()
    return any(node["NodeManagerAddress"] != here for node in ray.nodes() if node["Alive"])


def _live_nodes() -> int:
    import ray

    return sum(node["Alive"] for node in ray.nodes())


def _first_per_key(problems: list[tuple[tuple, str]]) -> list[tuple[tuple, str]]:
    """One line per config entry: a glob of a thousand files unseen is one problem, not a thousand."""
    seen, kept = set(), []
    for key, message in problems:
        if key not in seen:
            seen.add(key)
            kept.append((key, message))
    return kept


def _missing(paths: list[str]) -> set[int]:
    """On a node: the indexes of the paths it does not see."""
    return {i for i, path in enumerate(paths) if not os.path.exists(path)}
