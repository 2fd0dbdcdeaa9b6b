"""Ray's noise off the console, every byte of it kept in the run's log.

Ray writes to the process's standard streams from places Python's logging cannot filter: its C++
core worker on stderr (a notice about actor arguments that every Ray Data actor pool triggers,
ray-project/ray#57733), the raylet's notices that it forwards to stdout (a worker-count warning
that fractional-CPU actors set off), and warnings that are false for the way we use it (a "will
hang" CPU warning while our actors hold the CPUs on purpose). So while a run works, file
descriptors 1 and 2 are pipes: a thread per stream copies every line to the log file and passes
on only what is not known noise; anything else Ray reports, a dead worker say, still shows.
Our own console output goes to the terminal directly, through the stream this gives back.
What Ray's other processes print stays in their own logs (`ray_session` does not forward it, and
keeps a copy of them beside this one).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TextIO

NOISE = re.compile("|".join([
    r"core_worker\.cc:\d+: Actor with class name: .* has constructor arguments in the object store",
    r"PYTHON worker processes have been started on node",
    r"The Ray cluster currently does not have any available CPUs\. The Dataset job will hang",
    r"Progress bars disabled",  # we turn them off: our own live line says what a pass is doing
    r"Token authentication is enabled",  # on the local Ray we start for the user, not a choice of theirs
]))


def not_noise(line: str) -> str | None:
    return None if NOISE.search(line) else line


@contextlib.contextmanager
def filtered_console(log_path: Path, shown: Callable[[str], str | None] = not_noise) -> Iterator[TextIO]:
    """Within the block, stdout and stderr go through the filter: `shown` gives what of a line (without
    its newline) reaches the console, or None; yields a stream on the real stderr."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = []
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
        stream.flush()
        real_fd = os.dup(fd)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, fd)
        os.close(write_fd)
        pump = threading.Thread(target=_pump, args=(os.fdopen(read_fd, "rb"), log_path, os.dup(real_fd), shown),
                                name=f"console-filter-{fd}", daemon=True)
        pump.start()
        saved.append((fd, stream, real_fd, pump))
    real_stderr = os.fdopen(os.dup(saved[1][2]), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        yield real_stderr
    finally:
        real_stderr.close()
        for fd, stream, real_fd, _ in saved:
            stream.flush()
            os.dup2(real_fd, fd)  # our end of the pipe closes; a pump ends once Ray's processes closed theirs
            os.close(real_fd)
        for *_, pump in saved:
            pump.join(timeout=2)


def _pump(pipe: BinaryIO, log_path: Path, real_fd: int, shown: Callable[[str], str | None]) -> None:
    """Lines from the pipe to the log, and what `shown` keeps of them to the real stream, until every writer is gone.

    Each stream's pump appends to the log on its own handle: appends of whole lines do not interleave.
    """
    with open(log_path, "ab") as log:
        try:
            for line in pipe:
                log.write(line)
                log.flush()
                kept = shown(line.decode("utf-8", "replace").rstrip("\n"))
                if kept is not None:
                    os.write(real_fd, (kept + "\n").encode("utf-8"))
        finally:
            os.close(real_fd)
