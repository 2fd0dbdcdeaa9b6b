"""Ports for the servers the tests start (Ray nodes, SeaweedFS), and ports nothing listens on.

A port found by binding port 0 comes from the kernel's ephemeral range, the range every outgoing
connection also takes its local port from. Between a test picking such a port and its server binding
it, one of the hundreds of connections the suite's Ray sessions open can take it: the CI saw a test
cluster's GCS die with "Address already in use" that way. So ports are handed out from below the
ephemeral range, above Ray's worker ports (10002-19999), where only servers asking for a port by
number go; and each xdist worker walks a slice of its own, so two workers never pick the same port.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

RAY_WORKER_PORTS_END = 20_000


def _slice() -> range:
    low = RAY_WORKER_PORTS_END
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    high = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32_768
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = (high - low) // workers
    return range(low + worker * size, low + (worker + 1) * size)


_candidates = itertools.cycle(_slice())


def _bindable(port: int) -> bool:
    """Binding every address fails while any socket holds the port, on loopback or elsewhere (Ray's
    nodes listen on the machine's own address)."""
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port no socket holds now, from this worker's slice; the next call gives another."""
    for port in itertools.islice(_candidates, len(_slice())):
        if _bindable(port):
            return port
    raise RuntimeError(f"every port of {_slice()} is taken")


def free_ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]
