"""The output folder: what a run may replace, a refusal to replace what it did not write, and the swap
of a run's new shards into place.

A run replaces its shard folders (`data/`, `data_<format>/`, `rejects/`) wholesale and
overwrites the files it writes beside them. A file in those folders that no earlier run listed
in its manifest, or a folder that is not a pipeline output at all, belongs to someone else:
deleting it without a word is how a user loses data, so the run refuses unless told to
`--overwrite`. What earlier runs made and the current config no longer makes (shards of a
format no longer asked for, a dedup index under an old stage id) is removed, so an output holds
only what its config explains.

The folder may be on local disk or in object storage (`pipeline.storage`), where nothing can be
renamed atomically: the manifest, written last, is what says an output is complete. While new
shards replace old ones there is no manifest, and `.pipeline/writing.json` names every file the
swap may leave in the shard folders, so a run killed half-way is redone, not mistaken for a
finished output, and its files are not mistaken for someone else's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pyarrow.fs as pafs

from pipeline import storage
from pipeline.errors import UserError
from pipeline.storage import Location

WORK = ".pipeline"
MANIFEST = "manifest.json"
OWNED = "owned.json"  # in WORK: the stage outputs (relative paths) the last run made
WRITING = "writing.json"  # in WORK while shards are swapped in: every file the shard folders may hold
WRITES = "write-"  # in WORK: the folders a run writes its shards to before they are moved into place
LOGS = "logs"
KEEP_LOGS = 3
MOVERS = 16  # concurrent moves: on object storage each is a server-side copy and a delete


def data_dirs(formats: list[str]) -> dict[str, str]:
    """Shard folder of each output format: the first is `data/`, which `datasets.load_dataset` reads."""
    return {fmt: "data" if i == 0 else f"data_{fmt}" for i, fmt in enumerate(formats)}


def shard_dirs(formats: list[str]) -> list[str]:
    return [*data_dirs(formats).values(), "rejects"]


def refuse_foreign(out: Location, formats: list[str], overwrite: bool) -> None:
    """Before anything is written to `out`: refuse to replace files this pipeline did not write."""
    foreign = _foreign(out, formats)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (" and more" if len(foreign) > 3 else "")
        raise UserError(f"{out} holds files this pipeline did not write ({shown}); pass --overwrite to replace "
                        "them, or choose another output path")


def claim(out: Location, formats: list[str], stage_outputs: list[Location]) -> Location:
    """Make `out` this run's, before any work and once no other run holds it (`refuse_foreign` said it
    may): remove what we no longer make, and name a log folder for the run. A path that cannot be
    written fails here, in one line."""
    current = {_relative(p, out) for p in stage_outputs} - {None}
    for stale in sorted(_made_before(out, formats) - current):
        (out / stale).remove()
    for unfinished in (out / WORK).children():  # shards a killed run was writing
        if unfinished.name.startswith(WRITES):
            unfinished.remove()
    (out / WORK / OWNED).write_text(json.dumps(sorted(current)))
    return _log_dir(out)


def _foreign(out: Location, formats: list[str]) -> list[str]:
    """Files the run would replace that no earlier run wrote (relative paths)."""
    kind = out.info().type
    if kind == pafs.FileType.NotFound:
        return []
    if kind != pafs.FileType.Directory:
        raise UserError(f"output path {out} is a file, not a folder")
    entries = sorted(c.name for c in out.children())
    if not entries:
        return []
    if not (out / MANIFEST).exists() and not (out / WORK).exists():  # someone else's folder: name a few of its files
        return [f.relative_to(out) for f in out.files(hidden=True)[:4]] or entries
    listed = set(_listed(out, MANIFEST)) | set(_listed(out / WORK, WRITING))
    folders = set(shard_dirs(formats)) | {f.split("/")[0] for f in listed}
    return [f.relative_to(out) for folder in sorted(folders) for f in (out / folder).files(hidden=True)
            if f.relative_to(out) not in listed]


def _made_before(out: Location, formats: list[str]) -> set[str]:
    """What earlier runs made that this run does not make again by itself: stage outputs they listed,
    and shard folders of formats no longer asked for."""
    made = set(_listed(out / WORK, OWNED))
    keep = set(shard_dirs(formats))
    made |= {f.split("/")[0] for f in _listed(out, MANIFEST)} - keep
    return made


def _listed(folder: Location, name: str) -> list[str]:
    """The files a manifest (or the record of a swap in progress) lists, relative to the output."""
    try:
        data = json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return []
    return [f["path"] for f in data.get("files", [])] if isinstance(data, dict) else list(data)


def _relative(location: Location, out: Location) -> str | None:
    """None outside the output folder: the user's own place, never removed."""
    return location.relative_to(out) if location.within(out) else None


def manifest_files(out: Location) -> list[str]:
    return _listed(out, MANIFEST)


def swap_in(out: Location, formats: list[str], moves: list[tuple[Location, str]]) -> None:
    """Replace the shard folders with new files, each moved from where it was written to its path
    under `out`: a rename on disk, a server-side copy and a delete in object storage. The manifest
    goes first, so that until the next one is written the output reads as unfinished."""
    (out / WORK / WRITING).write_text(json.dumps(sorted(set(manifest_files(out)) | {path for _, path in moves})))
    (out / MANIFEST).remove()
    for name in shard_dirs(formats):
        (out / name).remove()
    with ThreadPoolExecutor(MOVERS) as pool:
        list(pool.map(lambda move: move[0].move_to(out / move[1]), moves))


def swapped(out: Location) -> None:
    """The manifest is written: the record of the swap goes."""
    (out / WORK / WRITING).remove()


def _log_dir(out: Location) -> Location:
    """A fresh folder under `logs/` for this run; the oldest go beyond the last few."""
    runs = [c for c in (out / LOGS).children() if c.name.startswith("run-")]
    for old in runs[: max(0, len(runs) - (KEEP_LOGS - 1))]:
        old.remove()
    return out / LOGS / f"run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}"


@contextlib.contextmanager
def local_logs(folder: Location) -> Iterator[Path]:
    """A folder on local disk for the run's logs, which grow while the run works (object storage has no
    append): the log folder itself when it is local, else a temporary one, copied to it at the end."""
    if folder.is_local:
        folder.make_dir()
        yield folder.local_path()
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-logs-") as tmp:
        try:
            yield Path(tmp)
        finally:
            storage.locate(tmp).copy_to(folder)
