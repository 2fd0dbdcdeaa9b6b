"""The output folder: what a run may replace, and a refusal to replace what it did not write.

A run replaces its shard folders (`data/`, `data_<format>/`, `rejects/`) wholesale and
overwrites the files it writes beside them. A file in those folders that no earlier run listed
in its manifest, or a folder that is not a pipeline output at all, belongs to someone else:
deleting it without a word is how a user loses data, so the run refuses unless told to
`--overwrite`. What earlier runs made and the current config no longer makes (shards of a
format no longer asked for, a dedup index under an old stage id) is removed, so an output holds
only what its config explains.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
from pathlib import Path

from pipeline.errors import UserError

WORK = ".pipeline"
MANIFEST = "manifest.json"
OWNED = "owned.json"  # in WORK: the stage outputs (relative paths) the last run made
LOGS = "logs"
KEEP_LOGS = 3


def data_dirs(formats: list[str]) -> dict[str, str]:
    """Shard folder of each output format: the first is `data/`, which `datasets.load_dataset` reads."""
    return {fmt: "data" if i == 0 else f"data_{fmt}" for i, fmt in enumerate(formats)}


def shard_dirs(formats: list[str]) -> list[str]:
    return [*data_dirs(formats).values(), "rejects"]


def claim(out: Path, formats: list[str], stage_outputs: list[Path], overwrite: bool) -> Path:
    """Make `out` this run's, before any work: refuse what we did not write, remove what we no longer
    make, and open a log folder for the run. A path that cannot be written fails here, in one line."""
    foreign = _foreign(out, formats)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (" and more" if len(foreign) > 3 else "")
        raise UserError(f"{out} holds files this pipeline did not write ({shown}); pass --overwrite to replace "
                        "them, or choose another output path")
    current = {_relative(p, out) for p in stage_outputs} - {None}
    for stale in sorted(_made_before(out, formats) - current):
        _remove(out / stale)
    work = out / WORK
    work.mkdir(parents=True, exist_ok=True)
    (work / OWNED).write_text(json.dumps(sorted(current)))
    return _log_dir(out)


def _foreign(out: Path, formats: list[str]) -> list[str]:
    """Files the run would replace that no earlier run wrote (relative paths)."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise UserError(f"output path {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return []
    if not (out / MANIFEST).exists() and not (out / WORK).exists():  # someone else's folder: name a few of its files
        return list(itertools.islice((p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()), 4)) \
            or entries
    listed = set(_manifest_files(out))
    folders = set(shard_dirs(formats)) | {f.split("/")[0] for f in listed}
    return [rel for folder in sorted(folders) if (out / folder).is_dir()
            for rel in _files_under(out, folder) if rel not in listed]


def _made_before(out: Path, formats: list[str]) -> set[str]:
    """What earlier runs made that this run does not make again by itself: stage outputs they listed,
    and shard folders of formats no longer asked for."""
    owned = out / WORK / OWNED
    made = set(json.loads(owned.read_text())) if owned.exists() else set()
    keep = set(shard_dirs(formats))
    made |= {f.split("/")[0] for f in _manifest_files(out)} - keep
    return made


def _manifest_files(out: Path) -> list[str]:
    try:
        return [f["path"] for f in json.loads((out / MANIFEST).read_text()).get("files", [])]
    except (OSError, ValueError):
        return []


def _files_under(out: Path, folder: str) -> list[str]:
    return [p.relative_to(out).as_posix() for p in sorted((out / folder).rglob("*")) if p.is_file()]


def _relative(path: Path, out: Path) -> str | None:
    try:
        return Path(path).resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return None  # outside the output folder: the user's own place, never removed


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _log_dir(out: Path) -> Path:
    """A fresh folder under `logs/` for this run; the oldest go beyond the last few."""
    logs = out / LOGS
    runs = sorted(p for p in logs.glob("run-*") if p.is_dir()) if logs.exists() else []
    for old in runs[: max(0, len(runs) - (KEEP_LOGS - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    folder = logs / f"run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}"
    folder.mkdir(parents=True)
    return folder
