"""A run that Ray leaves waiting forever on a disk too full to spill to ends in one line: in its own
process, since the stage tests share one Ray session and this one needs a small store and Ray's disk
share lowered below this disk's use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from tests.cli import ROOT

STUCK = """
import time
import numpy as np
import ray
from pipeline import cli, interrupts, spill_watch
from pipeline.config import RayConfig
from pipeline.progress import Progress
from pipeline.ray_session import ray_session

spill_watch.STUCK_S = 10  # a minute in a run; the rule itself is the same
interrupts.install()

@ray.remote
def first_values(*arrays):
    return [int(a[0]) for a in arrays]

try:
    with ray_session(RayConfig(num_cpus=2, object_store_memory=80_000_000), Progress(enabled=False)):
        spilled = []
        for i in range(50):  # slowly enough that Ray spills them as the store fills
            spilled.append(ray.put(np.full(1_000_000, i, dtype=np.uint8)))
            time.sleep(0.1)
        held = []
        for i in range(60):
            try:
                held.append(ray.put(np.full(1_000_000, i, dtype=np.uint8)))
            except ray.exceptions.OutOfDiskError:  # the store is full: what is spilled must come back for the task
                break
            time.sleep(0.1)
        ray.get(first_values.remote(*spilled))  # Ray restores, evicts and restores its arguments forever
    print("finished")
except KeyboardInterrupt:
    raise SystemExit(cli._interrupted())
"""


def test_arguments_that_cannot_come_back_from_a_full_disk_stop_the_run_with_one_line():
    """Ray 2.60 retries bringing a task's spilled arguments back into a full store forever when its disk
    is past the share Ray spills to: the run waited without a word until CI's timeout killed it."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", STUCK], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "RAY_local_fs_capacity_threshold": "0.001"})
    assert proc.returncode == 2 and "finished" not in proc.stdout, (proc.stdout, proc.stderr[-3000:])
    assert re.fullmatch(
        r"error: the Ray node [\d.]+ ran out of object store memory and cannot spill to its disk, which is fuller than "
        r"Ray allows \(95% by default\) \(/\S+: [\d.]+ GiB free of \d+ GiB\): free space there, or give Ray a "
        r"temporary folder on a larger disk \(RAY_TMPDIR\) or more object store memory \(ray.object_store_memory\)",
        proc.stderr.strip().splitlines()[-1]), proc.stderr[-3000:]
    assert time.monotonic() - started < 120
