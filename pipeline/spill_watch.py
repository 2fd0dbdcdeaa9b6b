"""A run that a node's full disk would leave waiting forever ends in one line instead.

A node whose object store is full spills objects to its disk, but not past a share of that disk (95%
by default; RAY_local_fs_capacity_threshold). Then a task's new object fails with Ray's OutOfDiskError,
which `ray_session` turns into a line; but an object that must come back from the spill files, to be
a task's argument, is retried by Ray (2.60's pull manager) forever: the task never starts and the run
waited without a word until it was killed (CI's 900 s timeout; Ray restores some arguments, evicts
them for others, and starts again). So while a run is on, a thread asks each node's raylet about its
object store; a node whose store has been short of room (full, or with pulls waiting for room) for
STUCK_S with no object created in it, and whose disk is past Ray's share, stops the run with the line
Ray's own error gets. A full store on a disk below the share is not stuck: Ray spills, or allocates
on disk. A task that runs longer than STUCK_S while the store is short of room, making nothing, on a
disk past the share, is stopped too: its result would have had no room either, unless it is small
enough to travel without the store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import interrupts

STUCK_S = 60.0  # short of room with nothing created: spilling makes room in seconds, on a disk that has it
FULL = 0.95  # of the store's capacity
EVERY_S = 5.0
DEFAULT_SHARE = 0.95  # Ray's local_fs_capacity_threshold


@dataclass(frozen=True)
class Disk:
    """Where a node spills, and how full it is against Ray's share."""

    path: str
    free: int
    total: int
    share: float  # the fraction of the disk past which Ray refuses to spill

    @property
    def too_full(self) -> bool:
        return self.total > 0 and 1 - self.free / self.total >= self.share


def spill_disk() -> Disk:
    """This node's: Ray spills under its temporary folder, and reads the share from its environment."""
    import ray

    folder = Path(ray._private.worker._global_node.get_session_dir_path()).parent
    usage = shutil.disk_usage(folder)
    return Disk(str(folder), usage.free, usage.total,
                float(os.environ.get("RAY_local_fs_capacity_threshold", DEFAULT_SHARE)))


def cannot_spill(node: str, disk: Disk | None, local: bool) -> str:
    """The line for `node` ("the Ray node 10.0.0.7"), which ran out of object store memory and may not spill."""
    where = f" ({disk.path}: {disk.free / 2**30:.1f} GiB free of {disk.total / 2**30:.0f} GiB)" if disk else ""
    return (f"{node} ran out of object store memory and cannot spill to its disk, which is fuller than Ray "
            f"allows (95% by default){where}: free space there, or give Ray a temporary folder on a larger "
            f"disk ({'RAY_TMPDIR' if local else 'ray start --temp-dir'}) or more object store memory"
            f"{' (ray.object_store_memory)' if local else ''}")


def short_of_room(store) -> bool:
    """Whether a node's store (its raylet's ObjectStoreStats) is full, or has pulls waiting for room: a
    stuck run showed either (80 MB of 80 used; 75 MB of 80 used and a task's 60 MB of arguments waiting)."""
    return store.object_pulls_queued or store.object_store_bytes_used >= FULL * store.object_store_bytes_avail


class Stall:
    """How long a node's object store has been short of room (full, or with pulls waiting for room)
    with no object created in it."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.created = -1

    def seen(self, now: float, short: bool, created: int) -> float:
        """Seconds stalled, given the node's store at `now`: whether it is short of room, and how many
        objects were ever created in it (restoring a spilled object does not count)."""
        if not short:
            self.since = None
        elif self.since is None or created != self.created:
            self.since = now
        self.created = created
        return 0.0 if self.since is None else now - self.since


@contextlib.contextmanager
def watching(local: bool):
    """The watch, for the length of the block (Ray is up)."""
    stop = threading.Event()
    thread = threading.Thread(target=_watch, args=(stop, local), name="spill-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=EVERY_S)


def _watch(stop: threading.Event, local: bool) -> None:
    import ray

    stalls: dict[str, Stall] = {}
    while not stop.wait(EVERY_S):
        try:
            for node in ray.nodes():
                if not node["Alive"]:
                    continue
                store = _store_stats(node)
                stalled = stalls.setdefault(node["NodeID"], Stall()).seen(
                    time.monotonic(), short_of_room(store), store.cumulative_created_objects)
                if stalled >= STUCK_S and not stop.is_set():
                    disk = spill_disk() if local else _remote_disk(node["NodeID"])
                    if disk is not None and disk.too_full:
                        interrupts.stop(cannot_spill(f"the Ray node {node['NodeManagerAddress']}", disk, local))
                        return
                    stalls[node["NodeID"]] = Stall()  # not stuck, busy: its disk is asked again in STUCK_S at most
        except Exception:  # a node that went away, a Ray without these calls: no verdict this round
            continue


def _store_stats(node: dict):
    from ray._private.internal_api import node_stats

    return node_stats(node["NodeManagerAddress"], node["NodeManagerPort"], include_memory_info=False).store_stats


def _remote_disk(node_id: str) -> Disk | None:
    from pipeline.ray_session import on_each_node

    return next((disk for name, disk in on_each_node(spill_disk).items() if f"(id {node_id[:8]})" in name), None)
