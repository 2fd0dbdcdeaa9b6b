"""One run at a time per output folder.

Two runs writing one output undo each other half-way: each clears the shard folders the other is
writing, and they share the checkpoints of `.pipeline/`. So a second run is refused, in one line that
names the first, before it touches anything.

On local disk the lock is the kernel's (`flock` on `.pipeline/lock.json`, removed when the run ends): it
goes with the process that holds it, even one killed by SIGKILL, so a killed run never locks its rerun
out. Object storage has no locks: a run keeps a lease there, the same file rewritten every `RENEW_S`
seconds. A lease left unrenewed for `LEASE_S` (by the store's clock) belongs to a run that is gone, and
so does one whose process on this host has exited. Two runs that start within moments of each other
may both find no lease: each reads it back `SETTLE_S` after writing it, and the one whose lease was
overwritten gives way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from typing import Iterator

from pipeline.errors import UserError
from pipeline.storage import Location

LOCK = ".pipeline/lock.json"
LEASE_S = 60.0
RENEW_S = 15.0
SETTLE_S = 1.0


@contextlib.contextmanager
def held(out: Location, job: str) -> Iterator[None]:
    """Hold `out` for this run (`job` says which, as a user would type it); UserError if another run holds it."""
    me = {"run": uuid.uuid4().hex, "job": job, "pid": os.getpid(), "host": socket.gethostname(),
          "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with (_flock if out.is_local else _lease)(out, me):
        yield


@contextlib.contextmanager
def _flock(out: Location, me: dict) -> Iterator[None]:
    path = (out / LOCK).local_path()
    fd = _locked(path, out)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: the next run makes a new one, and no trace is left
        os.close(fd)  # the lock goes with the descriptor
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # if empty, as in a fine-tune's folder


def _locked(path, out: Location) -> int:
    """A descriptor of the lock file, locked. A holder removes the file as it lets go, so a file opened
    just before that is no longer the lock once locked: then the one there now is taken."""
    for _ in range(5):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # its folder went with the holder's release
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 1 << 16, 0))
            os.close(fd)
            raise UserError(_busy(out, holder)) from None
        if _same_file(fd, path):
            return fd
        os.close(fd)
    raise UserError(f"{path}: could not take the output's lock: the file keeps changing")


def _same_file(fd: int, path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def _lease(out: Location, me: dict) -> Iterator[None]:
    lock = out / LOCK
    other = _read(lock)
    if other and _alive(lock, other):
        raise UserError(_busy(out, other, lock))
    lock.write_text(json.dumps(me))
    time.sleep(SETTLE_S)
    other = _read(lock)
    if other.get("run") != me["run"]:
        raise UserError(_busy(out, other, lock))
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, me, stop), name="lease-renewal", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        if _read(lock).get("run") == me["run"]:
            lock.remove()


def _renew(lock: Location, me: dict, stop: threading.Event) -> None:
    while not stop.wait(RENEW_S):
        with contextlib.suppress(OSError):  # the next renewal tries again; the run meets the store's trouble itself
            lock.write_text(json.dumps(me))


def _read(lock: Location) -> dict:
    try:
        return _holder(lock.read_bytes())
    except OSError:
        return {}


def _holder(data: bytes) -> dict:
    try:
        holder = json.loads(data)
    except ValueError:
        return {}  # taken a moment ago, not yet written
    return holder if isinstance(holder, dict) else {}


def _alive(lock: Location, holder: dict) -> bool:
    if holder.get("host") == socket.gethostname():
        return _process_exists(holder.get("pid"))
    renewed = lock.info().mtime
    return renewed is None or time.time() - renewed.timestamp() < LEASE_S


def _process_exists(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _busy(out: Location, holder: dict, lease: Location | None = None) -> str:
    who = ", ".join(f"{label}{holder[key]}" for key, label in
                    (("job", ""), ("pid", "pid "), ("host", "on "), ("started", "started ")) if holder.get(key))
    said = f"another run is writing {out}" + (f" ({who})" if who else "")
    if lease is not None and holder.get("host") != socket.gethostname():
        said += (f"; a run that is gone holds it until its lease in {lease} goes {LEASE_S:.0f} s "
                 "without renewal")
    return said + ": wait for it to end or stop it, or write to another output path"
