"""Local paths on a cluster of several nodes: each node must see them, or the work fails deep inside Ray.

A cluster's nodes share no disk unless a filesystem is mounted at the same path on each. On such a
cluster a run's local input failed in a worker's read ("Failed to open local file", with Ray's advice
on retries), and a local output failed after its first pass, whose counts were already short, when the
next pass read checkpoint pieces that another node had written to its own disk. So once Ray is up and
before any work, on a cluster of more than one node, every live node is asked whether it sees the local
files the work reads (the inputs, and what the stages' workers open: a model, a block list), and
whether it shares the local folder it writes to, the latter through a file the driver writes there (a
folder of the same name on each node's own disk does not pass). A path some node does not see is one
line naming it and the nodes.
"""

from __future__ import annotations

import os
import uuid

from pydantic import BaseModel

from generators.llm_config import LLMConfig
from pipeline import storage
from pipeline.config import ValidatedRun, in_file_order
from pipeline.errors import UserError
from pipeline.preflight import input_path
from pipeline.storage import Location
from pipeline.yaml_source import dotted

ADVICE = ("a cluster's nodes share no disk unless a filesystem is mounted at the same path on each: "
          "use object storage (s3://...) or such a filesystem (docs/cluster.md)")


def check_run(run: ValidatedRun) -> None:
    """A run's local input files, its stages' workers' files and its output folder, each problem at its config line."""
    named = _local_inputs(run) + _stage_files(run)
    out = storage.locate(run.config.output.path)
    files_unseen, out_unseen = unseen([path for _, path in named], out / ".pipeline" if out.is_local else None)
    problems = [(key, f"{run.located.where(key)}: {dotted(key)}: {said(path, nodes)}")
                for (key, path), nodes in zip(named, files_unseen) if nodes]
    if out_unseen:
        key = ("output", "path")
        problems.append((key, f"{run.located.where(key)}: {dotted(key)}: {said(out.path, out_unseen)}"))
    if problems:
        raise UserError(in_file_order(_first_per_key(problems), run.located))


def unseen(files: list[str], shared: Location | None = None) -> tuple[list[list[str]], list[str]]:
    """The live nodes that do not see each of the local `files`, and those that do not share the local
    folder `shared`; nothing is asked of a cluster of one node."""
    import ray

    from pipeline.ray_session import on_each_node

    if sum(node["Alive"] for node in ray.nodes()) < 2 or not (files or shared):
        return [[] for _ in files], []
    probe = shared / f".node-probe-{uuid.uuid4().hex[:12]}" if shared else None
    if probe:
        shared.make_dir()
        probe.write_bytes(b"")
    try:
        missing = on_each_node(_missing, files + ([probe.path] if probe else []))
    finally:
        if probe:
            probe.remove()

    def nodes(i: int) -> list[str]:
        return sorted(node for node, absent in missing.items() if i in absent)

    return [nodes(i) for i in range(len(files))], nodes(len(files)) if probe else []


def said(path: str, nodes: list[str]) -> str:
    many = len(nodes) > 1
    return (f"{path} is on this machine's disk, which the Ray node{'s' if many else ''} {', '.join(nodes)} "
            f"{'do' if many else 'does'} not see: {ADVICE}")


def _local_inputs(run: ValidatedRun) -> list[tuple[tuple, str]]:
    """Each local file the inputs name, with its entry's key path (an `hf` dataset is loaded by this process)."""
    named = []
    for i, source in enumerate(run.config.input):
        for j, pattern in enumerate(source.paths if source.format != "hf" else []):
            files = [f for f in storage.expand([pattern], pattern) if f.is_local]
            named += [(input_path(run, i, "paths", j), f.path) for f in files]
    return named


def _stage_files(run: ValidatedRun) -> list[tuple[tuple, str]]:
    """Each local file or folder this machine has that a stage's workers open (its options marked
    `storage.READ_ON_EVERY_NODE`, an in-process LLM's model), with its option's key path; what the driver
    alone reads (a benchmark, a rules file) need not be on the nodes."""
    named = []
    for i, stage in enumerate(run.stages):
        named += [(("stages", i, stage.name, *key), value) for key, value in _read_on_every_node(stage.config)]
        for name in sorted(stage.llm_names()):
            llm = LLMConfig.model_validate(run.config.llms[name])
            if llm.loads_on_workers:
                named.append((("llms", name, "model"), llm.model))
    local = [(key, storage.locate(value).path) for key, value in named  # a store's URI: every node's
             if "://" not in value or value.startswith("file://")]
    return [(key, path) for key, path in local if os.path.exists(path)]


def _read_on_every_node(options: BaseModel, key: tuple = ()):
    """(key path, value) of each string option so marked, in sections and lists of sections too."""
    for name, field in type(options).model_fields.items():
        value = getattr(options, name)
        for index, item in enumerate(value) if isinstance(value, list) else [(None, value)]:
            at = (*key, name) if index is None else (*key, name, index)
            if isinstance(item, BaseModel):
                yield from _read_on_every_node(item, at)
            elif isinstance(item, str) and (field.json_schema_extra or {}) == storage.READ_ON_EVERY_NODE:
                yield at, item


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
