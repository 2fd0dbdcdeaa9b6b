"""One run at a time per output folder, on local disk (the kernel's lock) and on a real S3 server (a
lease): the rules a second run meets. Two whole runs at once through the CLI are in
tests/e2e/test_honest_runs.py."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time

import pytest

from pipeline import run_lock, storage
from pipeline.errors import UserError


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path):
    if request.param == "local":
        return storage.locate(tmp_path / "out")
    return storage.locate(request.getfixturevalue("s3_bucket")) / "out"


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch):
    monkeypatch.setattr(run_lock, "SETTLE_S", 0.05)


def test_a_second_run_is_refused_while_the_first_holds_the_output(out):
    with run_lock.held(out, "pipeline run first.yaml"):
        with pytest.raises(UserError) as refused:
            with run_lock.held(out, "second.yaml"):
                pytest.fail("two runs held one output")
    said = str(refused.value)
    assert said.startswith(f"another run is writing {out} (pipeline run first.yaml, pid ")
    assert "\n" not in said
    with run_lock.held(out, "third.yaml"):  # released at the end of the first
        pass
    assert not (out / run_lock.LOCK).exists(), "a run leaves no lock behind"
    assert not out.is_local or not (out / ".pipeline").exists(), "nor an empty folder for it (a fine-tune's output)"


def test_a_run_in_another_process_is_refused_and_the_lock_goes_with_that_process(tmp_path):
    """The kernel's lock: held by a live process, gone when it is killed (SIGKILL runs no cleanup)."""
    out = storage.locate(tmp_path / "out")
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from pipeline import run_lock, storage
with run_lock.held(storage.locate({str(tmp_path / 'out')!r}), "holder.yaml"):
    print("held", flush=True)
    time.sleep(600)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=f"holder.yaml, pid {holder.pid}"):
            with run_lock.held(out, "mine.yaml"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock.held(out, "mine.yaml"):
        pass


def _write_lease(out, **holder) -> None:
    (out / run_lock.LOCK).write_text(json.dumps({"run": "other", "job": "pipeline run theirs.yaml", **holder}))


def test_a_lease_of_a_process_of_this_host_that_has_exited_is_taken_over(s3_bucket):
    out = storage.locate(s3_bucket) / "out"
    gone = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    gone.start()
    gone.join()
    _write_lease(out, host=run_lock.socket.gethostname(), pid=gone.pid)
    with run_lock.held(out, "mine.yaml"):
        assert json.loads((out / run_lock.LOCK).read_text())["job"] == "mine.yaml"
    assert not (out / run_lock.LOCK).exists(), "a run's lease goes when it ends"


def test_a_lease_of_another_host_holds_until_it_lapses(s3_bucket, monkeypatch):
    out = storage.locate(s3_bucket) / "out"
    _write_lease(out, host="elsewhere", pid=1)
    with pytest.raises(UserError, match="theirs.yaml, pid 1, on elsewhere.*without renewal"):
        with run_lock.held(out, "mine.yaml"):
            pass
    monkeypatch.setattr(run_lock, "LEASE_S", 1.0)  # the store's clock: wait for the lease to age
    time.sleep(1.5)
    with run_lock.held(out, "mine.yaml"):
        pass


def test_a_held_lease_is_renewed_so_it_never_lapses_under_a_long_run(s3_bucket, monkeypatch):
    out = storage.locate(s3_bucket) / "out"
    monkeypatch.setattr(run_lock, "RENEW_S", 0.3)
    with run_lock.held(out, "long.yaml"):
        first = (out / run_lock.LOCK).info().mtime
        time.sleep(2.5)  # the store's modification times have a second's resolution
        assert (out / run_lock.LOCK).info().mtime > first


def test_of_two_runs_that_both_found_no_lease_the_overwritten_one_gives_way(s3_bucket, monkeypatch):
    out = storage.locate(s3_bucket) / "out"
    write = storage.Location.write_text

    def and_then_another_run_writes(location, text, *args):  # the other run's write lands after ours
        write(location, text, *args)
        if location.name == "lock.json" and "mine.yaml" in text:
            _write_lease(out, host="elsewhere", pid=7)

    monkeypatch.setattr(storage.Location, "write_text", and_then_another_run_writes)
    with pytest.raises(UserError, match="pid 7, on elsewhere"):
        with run_lock.held(out, "mine.yaml"):
            pass
