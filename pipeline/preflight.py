"""Checks before work: everything a config names that can be looked at without running anything.

`pipeline validate` and `pipeline run` both call `check` before Ray starts, so a glob that matches
nothing, a missing model file or a benchmark that cannot be reached offline is reported in a
second, all of them at once, each with its file and line, instead of one at a time after Ray
has started and the stages before it have run. Storage is asked too: every input is looked at
and a small object is written at the output, so a missing bucket, an unreachable endpoint, wrong
credentials or a read-only key is one line naming the URI, not a failure in a Ray worker.
"""

from __future__ import annotations

import os

from pipeline import hub, storage
from pipeline.config import ValidatedRun, in_file_order
from pipeline.errors import UserError
from pipeline.yaml_source import dotted


def check(run: ValidatedRun) -> None:
    """Raise one UserError listing every problem of the inputs, the tokenizer and the stages."""
    run.worker_env()  # the storage settings, before any path is looked at
    down = _endpoint_down(run)
    if down:
        raise UserError(down)
    problems = _input_problems(run) + _output_problems(run) + _tokenizer_problems(run) + _ray_problems(run)
    for i, stage in enumerate(run.stages):  # a validated run has a stage for every entry of `stages:`
        for problem in stage.check():
            path = ("stages", i, stage.name, *problem.option)
            problems.append((path, f"{run.located.where(path)}: {dotted(path)}: {problem.message}"))
    if problems:
        raise UserError(in_file_order(problems, run.located))


ENDPOINT_TIMEOUT_S = 3.0


def _endpoint_down(run: ValidatedRun) -> str | None:
    """An S3 endpoint (AWS_ENDPOINT_URL) that does not answer, asked once: pyarrow's client retries every
    request for 1 to 2 s, so looking at each path would cost that per path to say the same thing."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    first = next(_s3_values(run.located.data), None)
    if not endpoint or first is None or hub._answers(endpoint, ENDPOINT_TIMEOUT_S):
        return None
    path, uri = first
    return (f"{run.located.where(path)}: {dotted(path)}: {uri}: the S3 endpoint {endpoint} (AWS_ENDPOINT_URL) "
            f"did not answer within {ENDPOINT_TIMEOUT_S:g} s")


def _ray_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    """A cluster address where nothing listens: `ray.init` would wait on it for minutes, its own retries
    printing on the console. `auto` and the Ray Client's `ray://` are Ray's to judge (at once)."""
    path = ("ray", "address")
    address = run.config.ray.address or os.environ.get("RAY_ADDRESS")
    if not address or address == "auto" or "://" in address:
        return []
    host, _, port = address.rpartition(":")
    if port.isdigit() and hub.listens(host.strip("[]"), int(port), ENDPOINT_TIMEOUT_S):
        return []
    where = f"{run.located.where(path)}: {dotted(path)}" if run.config.ray.address else "RAY_ADDRESS"
    return [(path, f"{where}: nothing answers at {address} within {ENDPOINT_TIMEOUT_S:g} s: give the head's "
                   "GCS address (HOST:6379, what `ray start --head` prints), or leave it out for a local Ray")]


def _s3_values(data, path: tuple = ()):
    """(key path, value) of each s3:// value in the config, in file order."""
    if isinstance(data, str) and data.startswith("s3://"):
        yield path, data
    elif isinstance(data, (dict, list)):
        for key, value in data.items() if isinstance(data, dict) else enumerate(data):
            yield from _s3_values(value, (*path, key))


def _input_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    problems = []
    for i, source in enumerate(run.config.input):
        files_key, files = "paths", source.paths
        if source.format == "hf":
            files_key, files = "data_files", source.data_files or []
            why = _dataset_problem(source.dataset)
            if why:
                path = input_path(run, i, "dataset")
                problems.append((path, f"{run.located.where(path)}: {dotted(path)}: {why}"))
        for j, pattern in enumerate(files):
            path = input_path(run, i, files_key, j)
            try:
                storage.expand([pattern], dotted(path))
            except UserError as e:
                bucket = storage.missing_bucket(pattern)
                problems.append((path, f"{run.located.where(path)}: {e}" + (f" ({bucket})" if bucket else "")))
    return problems


def _dataset_problem(dataset: str) -> str | None:
    """Why an `hf` input's dataset cannot load: one in object storage is looked at there, a local path
    or Hub id as `datasets` would find it."""
    if "://" in dataset:
        return storage.file_problem(dataset, folder=True)
    if _is_builder(dataset):
        return None
    why = hub.local_or_hub_problem(dataset, "dataset")
    return why and f"{why}; give a local copy (a folder `datasets` can load) instead"


def _output_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    """Whether the output can be written, asked by writing: a store's permissions cannot be read. On local
    disk the probe goes in the nearest folder that exists, so a check leaves no folder behind; a missing
    bucket is named before any write (some stores would create it)."""
    out = storage.locate(run.config.output.path)
    why = storage.missing_bucket(out)
    if why is None and out.is_local and out.local_path().is_file():  # `output: data.jsonl`, as if it named a file
        why = "it is a file; the output is a folder (of shards, rejects and the report): name a new folder"
    if why is None:
        where = out
        while where.is_local and not where.exists() and where.parent.path != where.path:
            where = where.parent
        why = storage.probe_writable(where)
    path = ("output", "path")
    return [(path, f"{run.located.where(path)}: {dotted(path)}: cannot write to {out.uri}: {why}")] if why else []


def _is_builder(dataset: str) -> bool:
    """`json`, `parquet`, `csv`...: a `datasets` builder that reads `data_files`, not a Hub dataset."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return dataset in _PACKAGED_DATASETS_MODULES


def input_path(run: ValidatedRun, i: int, *key) -> tuple:
    """The key path of an input's option: `input` may be one mapping or a list of them."""
    return ("input", i, *key) if isinstance(run.located.data.get("input"), list) else ("input", *key)


def _tokenizer_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    """The tokenizer that counts tokens loads here, as every worker will load it (a second or two)."""
    name = run.config.tokenizer
    why = hub.tokenizer_problem(name) if name else None
    if name and not why:
        from pipeline.stats import tokenizer_of

        try:
            tokenizer_of(name)
        except (OSError, ValueError) as e:
            why = f"cannot load it: {str(e).strip().splitlines()[0]}"
    where = run.located.where(("tokenizer",))
    return [(("tokenizer",), f"{where}: tokenizer: {why}; give the path of a local tokenizer folder")] if why else []

