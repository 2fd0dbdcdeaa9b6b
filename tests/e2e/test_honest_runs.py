"""Runs that fail say so, and say it in one line; nothing the user owns is lost; Ctrl-C always stops.

Each case was a "done ... exit 0", a traceback or a silent deletion before (issue 15).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import tarfile
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.cli import PIPELINE, cli

RAY_NOISE = ("core_worker.cc", "will hang", "PYTHON worker processes", "Failed to kill actor", "Traceback")
CROSSING_S = 2.0  # how late, on a loaded machine, a run can print "done" after a signal it had not yet handled


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def documents(path: Path, n: int, words: int = 30) -> Path:
    rng = random.Random(n)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(4000)]
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(rng.choice(vocab) for _ in range(words))
            f.write(json.dumps({"id": f"doc-{i}", "text": text, "url": f"https://site{i % 7}.example/{i}"}) + "\n")
    return path


def shard_rows(out: Path, folder: str = "data") -> list[dict]:
    return [r for p in sorted((out / folder).rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_a_run_with_nothing_readable_fails_naming_the_reasons(tmp_path, shared_data):
    warc = shared_data / "warc" / "sample-0000.warc.gz"
    config = write_config(tmp_path / "c.yaml", f"""
input: {{format: jsonl, paths: ["{warc}"]}}
output: "{tmp_path / 'out'}"
stages:
  - length: {{min_words: 3}}
""")
    proc = cli("run", str(config))
    assert proc.returncode == 1, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "nothing in the input could be read" in error[0] and "bad_json" in error[0]
    assert "done" not in proc.stderr and "Traceback" not in proc.stderr
    read_line = next(line for line in proc.stderr.splitlines() if "00-read:" in line)
    assert "kept 0" in read_line and "bad_json" in read_line, "the read step is on the console like any stage"
    quarantined = shard_rows(tmp_path / "out", "rejects/00-read")
    assert quarantined and all(json.loads(r["meta"])["path"] == str(warc) for r in quarantined)


def test_documents_read_beside_a_crawl_pass_extract_with_their_text(tmp_path, shared_data):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": f"note-{i}", "text": f"A note of ours, number {i}, kept as it is."}) + "\n"
                             for i in range(5)))
    config = write_config(tmp_path / "c.yaml", f"""
input:
  - {{format: warc, paths: ["{shared_data / 'warc' / 'sample-0000.warc.gz'}"]}}
  - {{format: jsonl, paths: ["{notes}"]}}
output: "{tmp_path / 'out'}"
stages:
  - extract: {{engine: resiliparse}}
""")
    proc = cli("run", "--quiet", str(config))
    assert proc.returncode == 0, proc.stderr
    kept = {r["id"]: r for r in shard_rows(tmp_path / "out")}
    assert all(kept[f"note-{i}"]["text"] == f"A note of ours, number {i}, kept as it is." for i in range(5))
    assert any(r["url"] and r["url"].startswith("http") and r["text"] for r in kept.values()), "pages are extracted"
    rejected = shard_rows(tmp_path / "out", "rejects")
    assert not any(r["id"].startswith("note-") for r in rejected)


def test_an_output_folder_with_files_we_did_not_write_is_refused(tmp_path):
    corpus = documents(tmp_path / "docs.jsonl", 50)
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", f"""
input: {{format: jsonl, paths: ["{corpus}"]}}
output: "{out}"
stages:
  - length: {{min_words: 3}}
  - dedup: {{method: exact}}
""")
    mine = out / "data" / "mine.parquet"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's own data")
    refused = cli("run", "--quiet", str(config))
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "data/mine.parquet" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and mine.read_bytes() == b"the user's own data"

    assert cli("run", "--quiet", "--overwrite", str(config)).returncode == 0
    assert not mine.exists() and len(shard_rows(out)) == 50
    assert (out / "dedup_index" / "02-dedup").is_dir()

    moved = write_config(tmp_path / "moved.yaml", config.read_text().replace("  - length: {min_words: 3}\n", ""))
    proc = cli("run", "--quiet", str(moved))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "dedup_index").iterdir()) == ["01-dedup"], "the old stage's index is gone"


def test_a_finished_output_answers_at_once_and_the_console_reads_well(tmp_path):
    corpus = documents(tmp_path / "docs.jsonl", 200)
    with open(corpus, "a") as f:
        f.write("{not json\n")
    config = write_config(tmp_path / "c.yaml", f"""
input: {{format: jsonl, paths: ["{corpus}"]}}
output: "{tmp_path / 'out'}"
stages:
  - length: {{min_words: 3, max_words: 1000}}
  - length: {{min_chars: 10}}
""")
    first = cli("run", str(config))
    assert first.returncode == 0, first.stderr
    assert not [line for line in first.stderr.splitlines() if any(n in line for n in RAY_NOISE)]
    read = next(line for line in first.stderr.splitlines() if "00-read:" in line)
    assert read.startswith("  00-read: in 201 -> kept 200, dropped 1 (bad_json: 1)"), "one record per line, never wrapped"
    logs = list((tmp_path / "out" / "logs").glob("run-*"))
    assert len(logs) == 1 and (logs[0] / "console.log").is_file() and tarfile.is_tarfile(logs[0] / "ray.tar.gz")

    again = cli("run", str(config))
    assert again.returncode == 0, again.stderr
    assert "starting a local Ray" not in again.stderr and "nothing to do" in again.stderr
    assert "02-length: in 200 -> kept 200, dropped 0  [resumed from checkpoint]" in again.stderr


def test_an_output_inside_the_input_folder_is_never_read_back(tmp_path):
    """Before, the rerun read the first run's shards, rejects, report and logs as input: 1,761 rows read
    of which 1,361 quarantined, and 400 rows out of 200, with "done" and exit 0. The folder's README is
    not data either."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    documents(corpus / "a.jsonl", 200)
    (corpus / "README.md").write_text("# Our corpus\n\nTwo hundred documents.\n")
    config = write_config(tmp_path / "c.yaml", f"""
input: {{format: jsonl, paths: ["{corpus}"]}}
output: {{path: "{corpus / 'clean'}", formats: [parquet, jsonl]}}
stages:
  - length: {{min_words: 3}}
""")
    first = cli("run", str(config))
    assert first.returncode == 0, first.stderr
    assert f"{corpus}: read its 1 jsonl file, left out 1 other (README.md)" in first.stderr
    assert "00-read: in 200 -> kept 200, dropped 0" in first.stderr
    again = cli("run", str(config))
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    (corpus / "b.jsonl").write_text((corpus / "a.jsonl").read_text().replace('"doc-', '"other-'))
    grown = cli("run", str(config))
    assert grown.returncode == 0 and "00-read: in 400 -> kept 400, dropped 0" in grown.stderr, grown.stderr
    assert f"{corpus}: read its 2 jsonl files, left out 1 other (README.md)" in grown.stderr
    assert len(shard_rows(corpus / "clean")) == 400


def test_resources_no_node_has_are_one_line_not_a_wait_forever(tmp_path):
    """Before, the run waited for such a node until it was killed, printing nothing."""
    corpus = documents(tmp_path / "docs.jsonl", 50)
    config = write_config(tmp_path / "c.yaml", f"""
input: {{format: jsonl, paths: ["{corpus}"]}}
output: "{tmp_path / 'out'}"
stages:
  - length: {{min_words: 3, resources: {{num_gpus: 64}}}}
""")
    proc = cli("run", str(config), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: stage 01-length: resources ask for 64 GPUs and 1 CPU per worker, more than any node of the Ray "
        "cluster has (1 node: "), proc.stderr


def test_a_disk_too_full_to_spill_to_is_one_line(tmp_path):
    """Ray refuses to spill past a share of its disk (95% by default: CI's disk was there); lowered so that this
    disk is past it, a run whose data outgrows the object store met Ray's OutOfDiskError as a worker traceback,
    or, on a busy machine, waited forever for spilled task arguments to come back (CI's 900 s timeout)."""
    rng = random.Random(0)
    with open(tmp_path / "big.jsonl", "w") as f:  # 120 MB against an 80 MB object store
        for i in range(20_000):
            f.write(json.dumps({"id": i, "text": rng.randbytes(3000).hex()}) + "\n")
    config = write_config(tmp_path / "c.yaml", f"""
input: {{format: jsonl, paths: ["{tmp_path / 'big.jsonl'}"]}}
output: "{tmp_path / 'out'}"
ray: {{object_store_memory: 80000000}}
stages:
  - dedup: {{}}
""")
    proc = cli("run", "--quiet", str(config), env={**os.environ, "RAY_local_fs_capacity_threshold": "0.001"},
               timeout=300)  # Ray raises, or it waits and the spill watch stops it after a minute
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.fullmatch(
        r"error: the Ray node [\d.]+ ran out of object store memory and cannot spill to its disk, which is fuller than "
        r"Ray allows \(95% by default\) \(/\S+: [\d.]+ GiB free of \d+ GiB\): free space there, or give Ray a "
        r"temporary folder on a larger disk \(RAY_TMPDIR\) or more object store memory \(ray.object_store_memory\)",
        proc.stderr.strip()), proc.stderr


def test_operating_system_errors_are_one_line(tmp_path):
    corpus = documents(tmp_path / "docs.jsonl", 5)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = write_config(tmp_path / "c.yaml", f"""
input: {{format: jsonl, paths: ["{corpus}"]}}
output: "{blocker / 'out'}"
""")
    proc = cli("run", "--quiet", str(config))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_inspect_into_a_closed_pipe_is_quiet(tmp_path):
    corpus = documents(tmp_path / "docs.jsonl", 3000)
    config = write_config(tmp_path / "c.yaml", f'input: {{format: jsonl, paths: ["{corpus}"]}}\noutput: "{tmp_path / "out"}"\n')
    assert cli("run", "--quiet", str(config)).returncode == 0
    proc = subprocess.run(f"{' '.join(PIPELINE)} inspect {tmp_path / 'out'} -n 3000 | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_a_second_run_into_an_output_being_written_is_refused_and_the_first_ends_whole(tmp_path):
    """Before the lock both ended in "done" and exit 0, each clearing the shard folders and sharing the
    checkpoints of the other."""
    corpus = documents(tmp_path / "docs.jsonl", 20_000, words=50)
    out = tmp_path / "out"
    config = _dedup_config(tmp_path / "c.yaml", corpus, out)
    with open(tmp_path / "first.txt", "w") as console:
        first = subprocess.Popen([*PIPELINE, "run", str(config)], stdout=console, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while f'"pid": {first.pid}' not in _read(out / ".pipeline" / "lock.json") and first.poll() is None:
            assert time.time() < deadline, "the first run never took the output"
            time.sleep(0.1)
        second = cli("run", str(config))
        assert first.poll() is None, "the first run ended before the second started: nothing was tested"
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
        said = second.stderr.strip().splitlines()
        assert len(said) == 1 and said[0].startswith(
            f"error: another run is writing {out} (pipeline run {config}, pid {first.pid}, on {os.uname().nodename}, started "), said
        assert first.wait(timeout=300) == 0, (tmp_path / "first.txt").read_text()[-3000:]
    finally:
        first.kill()
    assert "done in" in (tmp_path / "first.txt").read_text()
    assert len(shard_rows(out)) == 20_000
    again = cli("run", str(config))
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr


def _dedup_config(path: Path, corpus: Path, out: Path) -> Path:
    """A run of a few seconds with every kind of pass: map stages, and dedup's shuffle."""
    return write_config(path, f"""
input: {{format: jsonl, paths: ["{corpus}"]}}
output: "{out}"
fuse: false
stages:
  - length: {{min_words: 3}}
  - dedup: {{method: minhash}}
  - length: {{max_words: 1000}}
""")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.mark.slow
def test_ctrl_c_stops_the_run_at_any_moment(tmp_path):
    """20 interrupts at random moments of a run with a dedup stage (Ray starting, reading, passes,
    the dedup shuffle, writing): each stops the run with exit 130, never a "done", a traceback or a
    crash, and leaves none of the processes it started; one that lands after the "done", while the
    process exits, leaves that outcome and its exit 0 as they are. Even trials press Ctrl-C in a
    terminal (the whole process group gets SIGINT), odd ones send SIGINT to the command alone, and every
    fourth sends it SIGTERM instead, as `timeout`, `kill` or a scheduler cancelling a job does (Ray's
    core took SIGTERM over: its C++ stack on the console, death by the signal, no word of ours). Two
    trials run at once, each its own run and its own Ray: the moments span the whole of a run slowed
    by the other.

    The test reads the console just before it sends the signal, so on a loaded machine the run can
    print its "done" and end in between: a "done" written within `CROSSING_S` of the signal is that
    crossing, and either honest outcome stands; a "done" written later means the Ctrl-C was lost."""
    corpus = documents(tmp_path / "docs.jsonl", 20_000, words=50)
    rng = random.Random(15)
    moments = [rng.uniform(0.3, 14.0) for _ in range(20)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        trials = list(pool.map(lambda k: _interrupted_run(tmp_path, corpus, k, moments[k]), range(20)))
    for trial, (moment_was, returncode, output, left) in enumerate(trials):
        assert "Exception ignored" not in output and "Traceback" not in output, output[-3000:]
        assert "SIGTERM received" not in output, output[-3000:]
        assert not left, f"trial {trial}: processes left behind: {left}"
        said = f"trial {trial} ({moment_was}): exit {returncode}\n{output[-3000:]}"
        stopped = 128 + _signal_of(trial)
        if moment_was == "working":
            assert returncode == stopped, said
            assert "interrupted" in output and "done in" not in output
        elif moment_was == "crossing":  # interrupted, or over before the signal was handled
            assert (returncode, "interrupted" in output) in ((stopped, True), (0, False)), said
        elif moment_was == "after done":  # the run is over and said so: its outcome stands
            assert returncode == 0 and "interrupted" not in output, said
    assert sum(m == "working" for m, *_ in trials) >= 12, "most interrupts must land while the run works"


def _interrupted_run(tmp_path: Path, corpus: Path, trial: int, moment: float) -> tuple[str, int, str, list[int]]:
    """Start a run and interrupt it `moment` seconds later. Returns what the run was doing then
    ("working", "crossing": printing its "done" as the signal came, "after done": exiting once its
    outcome was printed, or "gone"), its exit code, its console, and what it had started that is still alive."""
    config = _dedup_config(tmp_path / f"c{trial}.yaml", corpus, tmp_path / f"out{trial}")
    log = tmp_path / f"console{trial}.txt"
    with open(log, "w") as console:  # a file, not a pipe: a process left behind cannot hold the test up
        proc = subprocess.Popen([*PIPELINE, "run", str(config)], stdout=console, stderr=subprocess.STDOUT,
                                start_new_session=True)
    time.sleep(moment)
    started = {c.pid for c in _children(proc.pid)}
    moment_was = "gone" if proc.poll() is not None else "after done" if "done in" in log.read_text() else "working"
    if moment_was != "gone":
        (os.killpg if trial % 2 == 0 else os.kill)(proc.pid, _signal_of(trial))
        signalled = time.time()
    try:
        proc.wait(timeout=90)
        left = _still_alive(started)
    finally:
        _kill(started | {proc.pid})
    output = log.read_text()
    if moment_was == "working" and "done in" in output and log.stat().st_mtime < signalled + CROSSING_S:
        moment_was = "crossing"  # nothing is printed after "done": the file's last write is when it was
    return moment_was, proc.returncode, output, left


def _signal_of(trial: int) -> int:
    return signal.SIGTERM if trial % 4 == 3 else signal.SIGINT


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _still_alive(pids: set[int], wait_s: float = 30) -> list[int]:
    deadline = time.time() + wait_s
    while True:
        alive = [p for p in pids if not _gone(p)]
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.5)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill(pids: set[int]) -> None:
    """What a trial started and is still there, by PID, so that no trial runs beside another's leftovers."""
    for pid in pids:
        if not _gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
