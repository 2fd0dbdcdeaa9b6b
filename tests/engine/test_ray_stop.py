"""Stopping the local Ray a run starts: in its own process, since the stage tests share one Ray session."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli import ROOT

STOP = """
import json, ray, ray._private.worker as w
from pipeline.config import RayConfig
from pipeline.progress import Progress
from pipeline.ray_session import ray_session

seen = {}
shutdown = ray.shutdown
def watched(*args, **kwargs):
    seen["monitor_alive_at_shutdown"] = monitor.poll() is None
    seen["raylet_alive_at_shutdown"] = raylet.poll() is None
    return shutdown(*args, **kwargs)
ray.shutdown = watched
with ray_session(RayConfig(num_cpus=1), Progress(enabled=False)):
    monitor = w._global_node.all_processes["monitor"][0].process
    raylet = w._global_node.all_processes["raylet"][0].process
    assert ray.get(ray.remote(lambda: 1).remote()) == 1
seen["all_stopped"] = monitor.poll() is not None and raylet.poll() is not None
print(json.dumps(seen))
"""


def test_the_autoscaler_monitor_is_gone_before_ray_stops_the_rest():
    """Ray's own stop left the monitor a second to report to a GCS it had already stopped (a second of
    every run): the session kills it first; the raylet and the rest are still Ray's to stop."""
    done = subprocess.run([sys.executable, "-c", STOP], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"monitor_alive_at_shutdown": False, "raylet_alive_at_shutdown": True, "all_stopped": True}
