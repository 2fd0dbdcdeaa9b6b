"""Pass checkpoints: Parquet output, a completion marker, and a fingerprint of what produced it.

A pass (one stage, or consecutive map stages fused into one Ray pass) is checkpointed under its
id; its marker holds the statistics of each of its stages. A stage's fingerprint chains the
fingerprint of its input, so changing one stage's config invalidates exactly the pass it is in
and the ones after it. Output is written to a temporary
directory and renamed into place before the marker is written: a killed run leaves either a
complete checkpoint or none, and a re-run redoes the unfinished pass from its (checkpointed)
input, so no row is lost or written twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

MARKER = "_SUCCESS.json"
SCHEMA_VERSION = 2


def fingerprint(*parts: Any) -> str:
    blob = json.dumps([SCHEMA_VERSION, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Checkpoints:
    def __init__(self, output_dir: Path):
        self.root = Path(output_dir) / ".pipeline" / "stages"
        self._rows_seen: dict[Path, int] = {}

    def dir(self, stage_id: str) -> Path:
        return self.root / stage_id

    def done(self, stage_id: str, fp: str) -> dict | None:
        """The marker of a finished checkpoint with this fingerprint, or None."""
        marker = self.dir(stage_id) / MARKER
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("fingerprint") == fp else None

    def write(self, stage_id: str, dataset) -> Path:
        """Write a dataset as the stage's checkpoint, atomically replacing any earlier one."""
        final = self.dir(stage_id)
        tmp = final.with_name(f".{stage_id}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        dataset.write_parquet(str(tmp))
        tmp.mkdir(exist_ok=True)  # an empty dataset writes no files
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def rows_written(self, stage_id: str) -> int:
        """Rows in the files a running pass has finished so far, read from their Parquet footers: the
        live count a terminal shows. A file still being written is counted at the next look."""
        import pyarrow.parquet as pq

        total = 0
        for path in self.root.glob(f".{stage_id}.tmp-*/*.parquet"):
            if path not in self._rows_seen:
                try:
                    self._rows_seen[path] = pq.read_metadata(path).num_rows
                except (OSError, ValueError):
                    continue
            total += self._rows_seen[path]
        return total

    def read(self, stage_id: str):
        """A stage's checkpoint as a dataset; a stage that kept and dropped nothing wrote no file."""
        import ray.data

        directory = self.dir(stage_id)
        if not any(directory.glob("*.parquet")):
            return ray.data.from_items([])
        return ray.data.read_parquet(str(directory))

    def mark(self, stage_id: str, fp: str, record: dict) -> None:
        marker = self.dir(stage_id) / MARKER
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fingerprint": fp, "stats": record}, indent=1, default=str))
        os.replace(tmp, marker)

    def clean_stale(self, keep: set[str]) -> None:
        """Remove temporary directories of killed runs and checkpoints of stages no longer in the config."""
        if not self.root.exists():
            return
        for child in self.root.iterdir():
            if child.name.startswith(".") or child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
