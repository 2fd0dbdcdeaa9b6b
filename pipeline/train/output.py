"""Where a fine-tune writes: its output folder on any storage, and a local folder for libraries that need one.

transformers, peft and TensorBoard write only local files, and an object store has no append, so the
adapter, the tokenizer and the logs are written into a local folder and uploaded from it: a temporary
folder when the output is in object storage, the output folder itself when it is on disk (where
nothing is copied and the run behaves as it always has). Checkpoints need no local folder: torch
writes to any stream, so they go straight through `storage`, and a run interrupted on one machine
resumes from the store on another.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipeline import storage


class Output:
    def __init__(self, location: storage.Location | str | Path):
        self.location = storage.locate(location)
        self._tmp = None if self.location.is_local else tempfile.TemporaryDirectory(prefix="pipeline-finetune-")
        self.local = self.location.local_path() if self._tmp is None else Path(self._tmp.name)

    @property
    def checkpoints(self) -> storage.Location:
        return self.location / "checkpoints"

    def fetch(self, name: str) -> None:
        """Bring `name` (a file or folder) from the store into the local folder, when it is there."""
        if self._tmp is not None and (self.location / name).exists():
            (self.location / name).copy_to(storage.locate(self.local / name))

    def publish(self, name: str) -> None:
        """Upload `name` (a file or folder) from the local folder to the store."""
        if self._tmp is not None:
            storage.locate(self.local / name).copy_to(self.location / name)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
