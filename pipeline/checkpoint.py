"""Pass checkpoints: Parquet output, a completion marker, and a fingerprint of what produced it.

A pass (one stage, or consecutive map stages fused into one Ray pass) is checkpointed under its
id; its marker holds the statistics of each of its stages. A stage's fingerprint chains the
fingerprint of its input, so changing one stage's config invalidates exactly the pass it is in
and the ones after it.

Checkpoints live beside the output, on local disk or in object storage, and object storage has
no rename: nothing is moved into place. Each attempt at a pass writes its files into a folder of
its own, `<pass>/<attempt>/`, and the marker `<pass>/_SUCCESS.json`, one object written last,
names the attempt it completes. Readers read only the attempt a marker names, so a run killed at
any moment leaves each pass either complete or absent: a re-run redoes the unfinished pass from
its (checkpointed) input, and no row is lost or written twice. Attempts that no marker names
(killed runs) and attempts a newer marker superseded are deleted.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from pipeline import storage
from pipeline.storage import Location

MARKER = "_SUCCESS.json"
SCHEMA_VERSION = 2
# A write task's rows in one row group, not one per block (Ray's default, about a hundred rows): a
# file's footer and the statistics scan's reads of a few narrow columns shrink with the row groups.
ROW_GROUP_ROWS = 65_536


def fingerprint(*parts: Any) -> str:
    blob = json.dumps([SCHEMA_VERSION, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def local_files_named(options: Any) -> list:
    """Name, size and modification time of every local file a stage's options name (a classifier, a KenLM
    model, a regression head, a seed file, a block list): a model retrained under the same name must not
    resume from the results of the old one. Folders are left out: the ones options name are often what the
    run itself writes (a dedup index, a response cache), which would make every resume a re-run; so are
    object-storage URIs (a request each)."""
    found = []
    for value in _strings(options):
        path = Path(value).expanduser()
        if "://" not in value and path.is_file():
            stat = path.stat()
            found.append([value, stat.st_size, stat.st_mtime_ns])
    return found


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


class Checkpoints:
    def __init__(self, output_dir: Location | str):
        self.root = storage.locate(output_dir) / ".pipeline" / "stages"
        self._writing: dict[str, Location] = {}  # pass -> the attempt this process wrote last
        self._rows_seen: dict[str, int] = {}

    def _marker(self, pass_id: str) -> dict | None:
        try:
            data = json.loads((self.root / pass_id / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("attempt") else None  # an older layout's marker: redo

    def done(self, pass_id: str, fp: str) -> dict | None:
        """The marker of a finished checkpoint with this fingerprint, or None."""
        data = self._marker(pass_id)
        return data if data and data.get("fingerprint") == fp else None

    def write(self, pass_id: str, dataset) -> Location:
        """Write a dataset as a new attempt at the pass; it counts once `mark` names it."""
        attempt = self.root / pass_id / uuid.uuid4().hex[:16]
        self._writing[pass_id] = attempt
        dataset.write_parquet(attempt.path, filesystem=attempt.fs, row_group_size=ROW_GROUP_ROWS)
        return attempt

    def rows_written(self, pass_id: str) -> int:
        """Rows in the files a running pass has finished so far, read from their Parquet footers: the
        live count a terminal shows. A file still being written is counted at the next look."""
        import pyarrow.parquet as pq

        attempt = self._writing.get(pass_id)
        if attempt is None:
            return 0
        total = 0
        for f in attempt.files():
            if f.path not in self._rows_seen:
                try:
                    self._rows_seen[f.path] = pq.read_metadata(f.path, filesystem=f.fs).num_rows
                except (OSError, ValueError):
                    continue
            total += self._rows_seen[f.path]
        return total

    def attempt(self, pass_id: str) -> Location | None:
        """The folder of the attempt the pass's marker names, or None."""
        data = self._marker(pass_id)
        return self.root / pass_id / data["attempt"] if data else None

    def read(self, pass_id: str):
        """A finished pass's checkpoint as a dataset."""
        return read_attempt(self.attempt(pass_id))

    def mark(self, pass_id: str, fp: str, record: dict) -> None:
        """Make the attempt this process wrote the pass's checkpoint, then delete the ones it supersedes."""
        attempt = self._writing[pass_id]
        marker = {"fingerprint": fp, "attempt": attempt.name, "stats": record}
        (self.root / pass_id / MARKER).write_text(json.dumps(marker, indent=1, default=str))
        self._remove_unnamed(pass_id, attempt.name)

    def clean_stale(self, keep: set[str]) -> None:
        """Remove attempts of killed runs, superseded attempts, and checkpoints of passes no longer in the config."""
        for child in self.root.children():
            if child.name in keep:
                named = self._marker(child.name)
                self._remove_unnamed(child.name, named["attempt"] if named else None)
            else:
                child.remove()

    def _remove_unnamed(self, pass_id: str, attempt: str | None) -> None:
        for child in (self.root / pass_id).children():
            if child.name not in (MARKER, attempt):
                child.remove()


def read_attempt(attempt: Location):
    """An attempt's files as a dataset; a pass that kept and dropped nothing wrote no file."""
    import ray.data

    if not any(f.suffix == ".parquet" for f in attempt.files()):
        return ray.data.from_items([])
    return ray.data.read_parquet(attempt.path, filesystem=attempt.fs, file_extensions=["parquet"])
