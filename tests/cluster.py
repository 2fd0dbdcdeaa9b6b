"""A real multi-node Ray cluster on this machine for tests: `ray start --head` and `ray start
--address` as separate process trees, each node with its own temp dir and ports, stopped by the
process groups this module started.

Why it cannot leak into the rest of the suite:
- A plain `ray.init()` (the suite's in-process Ray, and every `pipeline run` subprocess without an
  address) joins a cluster only through RAY_ADDRESS or the file `/tmp/ray/ray_current_cluster`,
  which `ray start` writes into its *own* temp dir. Every node here gets a fresh temp dir of its own
  (short, under /tmp: Ray's Unix sockets live there and their paths must stay under 108 bytes), so
  that file lands in it, never in /tmp/ray; and nothing here sets RAY_ADDRESS in this process:
  tests pass the address only in the environment of the subprocesses meant to use the cluster.
- Every port is picked free (GCS, node manager, object manager, dashboard and its agents, metrics,
  Ray Client) by tests/ports.py, outside the ephemeral range, so two nodes here, and any local Ray
  another test starts meanwhile, never collide on Ray's fixed defaults (6379, 8265, 10001, 52365)
  nor on a port an outgoing connection took.
- Each node's `ray start --block` runs in a new session, which holds every process of the node (the
  GCS, raylet, dashboard, agents and the workers the raylet starts, each in a process group of its
  own): `ray start` gets SIGTERM, what is left of its session SIGKILL by PID, and the temp dir is
  removed. Never `ray stop`, which ends every Ray on the machine.
- Each cluster has an auth token of its own (Ray 2.5x enables token authentication by default),
  given only to its nodes and to the drivers meant to use it: no other process can join it, even
  by address, and it never touches the machine-wide ~/.ray/auth_token.

Ray refuses the loopback address for a multi-node cluster and resolves 127.0.0.1 to the machine's
own interface address, so the nodes listen there, as every local Ray of the suite already does;
nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.ports import free_port

BLOCKING = b"will now block forever"
IDLE_TITLES = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")
RAY = str(Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 300_000_000  # per node: the suite's data is megabytes, and /dev/shm is shared


class Node:
    """One `ray start --block` process tree."""

    def __init__(self, name: str, proc: subprocess.Popen, temp_dir: Path, log: Path):
        self.name, self.proc, self.temp_dir, self.log = name, proc, temp_dir, log

    def processes(self) -> list[psutil.Process]:
        """Every live process of this node: its session, which `ray start` leads (the raylet puts each
        worker in a process group of its own, but they stay in the session)."""
        found = []
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getsid(p.pid) == self.proc.pid:
                    found.append(p)
            except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                pass
        return found

    def busy(self) -> bool:
        """Whether a Ray worker of this node runs a task or an actor now (its process title says
        which: `ray::IDLE` for an idle worker, `ray::<task or actor>` for a busy one)."""
        for p in self.processes():
            try:
                title = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if title.startswith("ray::") and not title.startswith(IDLE_TITLES):
                return True
        return False

    def raylet(self) -> psutil.Process:
        for p in self.processes():
            try:
                if p.name() == "raylet":
                    return p
            except psutil.NoSuchProcess:
                pass
        raise RuntimeError(f"node {self.name} has no raylet; see {self.log}")

    def stop(self) -> None:
        """`ray start` shuts its node down in order on SIGTERM (a SIGTERM to every process at once
        makes the raylet and GCS wait for each other); what is left of the session then gets SIGKILL,
        process by process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class RayCluster:
    """A head node and worker nodes started by `ray start`, each a process group of its own.

    `env` goes to every node (an S3 endpoint and key pair: what a cluster's nodes are configured
    with); `python` starts a node from another environment (one that lacks a package, say)."""

    def __init__(self, env: dict[str, str] | None = None):
        token = secrets.token_hex(32)
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        self.env = {**os.environ, **(env or {}), **self.auth, "RAY_USAGE_STATS_ENABLED": "0",
                    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[Node] = []
        self.address: str | None = None  # the GCS address, as the head wrote it into its temp dir
        self.dashboard_port = free_port()

    @property
    def dashboard_url(self) -> str:
        """The head's HTTP address, where `ray job submit` sends jobs."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def client_env(self, **extra: str) -> dict[str, str]:
        """The environment of a driver meant to use this cluster: its address and token."""
        return {**self.env, "RAY_ADDRESS": self.address, **extra}

    def start_head(self, num_cpus: int = 1, dashboard: bool = False) -> Node:
        args = ["--head", f"--port={free_port()}", f"--ray-client-server-port={free_port()}",
                f"--include-dashboard={str(dashboard).lower()}"]
        if dashboard:
            args += ["--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}"]
        head = self._start("head", args, num_cpus)
        self.address = (head.temp_dir / "ray_current_cluster").read_text().strip()
        return head

    def add_worker(self, num_cpus: int = 1, python: str | None = None, unseen: tuple[Path, ...] = (),
                   hosts: str | None = None, ip: str | None = None, env: dict[str, str] | None = None) -> Node:
        """A worker node; `unseen` folders are empty on it (a private mount namespace with an empty
        tmpfs over each), as the driver's local disk is on another machine's node; `hosts` is its
        /etc/hosts (bound over the file in that namespace), as another machine resolves names its own way;
        `ip` its address (another loopback one, 127.0.0.3, reads as another machine's); `env` what its
        environment has that the others' do not (a key of its own, say)."""
        args = [f"--address={self.address}"] + ([f"--node-ip-address={ip}"] if ip else [])
        node = self._start(f"worker{len(self.nodes)}", args, num_cpus, python, unseen, hosts, env)
        self.wait_alive(len(self.nodes))
        return node

    def remove(self, node: Node) -> None:
        """A node stopped (what is left of it, after a fault) and forgotten."""
        node.stop()
        shutil.rmtree(node.temp_dir, ignore_errors=True)
        self.nodes.remove(node)

    def _start(self, name: str, args: list[str], num_cpus: int, python: str | None = None,
               unseen: tuple[Path, ...] = (), hosts: str | None = None, env: dict[str, str] | None = None,
               timeout_s: float = 120) -> Node:
        temp_dir = Path(tempfile.mkdtemp(prefix=f"rc-{name}-", dir="/tmp"))
        log = temp_dir / "start.log"
        command = [python, "-c", "from ray.scripts.scripts import main; main()"] if python else [RAY]
        mounts = [f"mount -t tmpfs none '{folder}'" for folder in unseen]
        if hosts is not None:
            (temp_dir / "hosts").write_text(hosts)
            mounts.append(f"mount --bind '{temp_dir / 'hosts'}' /etc/hosts")
        if mounts:  # unshare and sh exec: the node's `ray start` keeps the process (and session) started here
            script = " && ".join(mounts)
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{script} && exec "$@"', "sh",
                       *command]
        command += ["start", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}",
                    f"--num-cpus={num_cpus}", "--num-gpus=0", f"--object-store-memory={OBJECT_STORE_BYTES}",
                    f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                    f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                    f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}", *args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**self.env, **(env or {})}, start_new_session=True, cwd=temp_dir)
        node = Node(name, proc, temp_dir, log)
        self.nodes.append(node)
        deadline = time.time() + timeout_s
        while BLOCKING not in log.read_bytes():  # printed once the node is up and registered
            if proc.poll() is not None:
                raise RuntimeError(f"ray start ({name}) exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.time() > deadline:
                raise RuntimeError(f"node {name} did not start in {timeout_s:.0f} s; see {log}")
            time.sleep(0.3)
        return node

    def wait_alive(self, count: int, timeout_s: float = 120) -> None:
        """Until the GCS counts `count` live nodes; asked from a subprocess with the cluster's token,
        so this process never joins the cluster nor holds its credentials."""
        script = (
            "import sys, time\n"
            "from ray._raylet import GcsClient\n"
            "deadline = time.time() + float(sys.argv[3])\n"
            "while True:\n"
            "    nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10).values()\n"
            "    alive = sum(1 for n in nodes if n.state == 0)\n"  # GcsNodeInfo.ALIVE
            "    if alive == int(sys.argv[2]) or time.time() > deadline:\n"
            "        sys.exit(alive != int(sys.argv[2]))\n"
            "    time.sleep(0.5)\n")
        done = subprocess.run([sys.executable, "-c", script, self.address, str(count), str(timeout_s)],
                              env=self.env, capture_output=True, text=True, timeout=timeout_s + 60)
        if done.returncode != 0:
            raise RuntimeError(f"the cluster did not reach {count} live nodes: {done.stderr[-2000:]}")

    def stop(self) -> None:
        """Worker nodes first, then the head; every temp dir removed."""
        for node in reversed(self.nodes):
            node.stop()
        for node in self.nodes:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        self.nodes.clear()


def python_without(folder: Path, module: str) -> str:
    """A second Python environment: a venv holding this one's packages (as links), less every
    distribution that provides `module`; a node started from it lacks exactly that package, as a
    cluster node whose image was built without it would. Returns its interpreter."""
    import importlib.metadata
    import sysconfig

    venv = folder / f"venv-without-{module}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    here = Path(sysconfig.get_paths()["purelib"])
    there = venv / here.relative_to(sys.prefix)
    dists = importlib.metadata.packages_distributions().get(module, [])
    left_out = {module}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"] in dists:
            left_out |= {f.parts[0] for f in dist.files or () if f.parts[0] != ".."}
    for entry in here.iterdir():
        if entry.name not in left_out:
            (there / entry.name).symlink_to(entry)
    return str(venv / "bin" / "python")
