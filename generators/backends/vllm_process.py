"""A vLLM OpenAI-compatible server that the pipeline starts, watches, restarts and always stops.

vLLM often needs its own virtual environment (its CPU build pins other transformers and numpy), so
the server runs as a child process with whichever python has vLLM, started as
`python -m vllm.entrypoints.openai.api_server` (the `vllm serve` entry point of the CPU build fails
on a package-name lookup; the module takes the same options).

No orphan survives the run: the server gets its own process group (so a terminal's Ctrl-C reaches
only us, and we stop it in order), and the group is killed on `stop()`, on leaving the `with` block,
at interpreter exit, and on SIGTERM/SIGHUP (turned into a normal exit so cleanup runs). Even a
SIGKILL of the pipeline, where none of that can run, leaves nothing behind: the group's leader is a
small reaper (`_REAPER`) that starts the server and, once its owner is gone, stops the group itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

# The process-group leader: runs the server, and stops the whole group once the process that started
# it has died (its parent pid changes). It ignores the SIGTERM that `stop()` sends to the group and
# exits with the server's own exit code, so the owner sees the server's status.
_REAPER = """
import os, signal, subprocess, sys, time
owner = os.getppid()
server = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while server.poll() is None:
    if os.getppid() != owner:
        os.killpg(0, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(0, signal.SIGKILL)
    time.sleep(0.5)
sys.exit(server.returncode if server.returncode >= 0 else 128 - server.returncode)
"""

_LIVE: "set[VLLMServerProcess]" = set()  # strong references: a forgotten server object must still be stopped


class ServerStartError(RuntimeError):
    """The server exited or did not become healthy in time; the message ends with its log's tail."""


class PortTaken(ServerStartError):
    """Another process bound the server's port first. vLLM binds it before loading the model, so this
    costs seconds, and a port we picked ourselves is simply picked again."""


PORT_TAKEN = "Address already in use"
PORT_TRIES = 3
ANY_ADDRESS = ("0.0.0.0", "::", "[::]")  # a host to listen on that means every address of the machine


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def _install_cleanup() -> None:
    """atexit always; SIGTERM/SIGHUP only where nobody else handles them (main thread, default handler)."""
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _exit_on_signal)


_cleanup_once = threading.Lock()
_cleanup_done = False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VLLMServerProcess:
    """`with VLLMServerProcess(python, args, env) as server: server.url` — started and healthy inside."""

    def __init__(
        self,
        python: str,
        args: list[str],
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 600.0,
        max_restarts: int = 3,
        log_file: str | Path | None = None,
    ):
        self.python = python
        self.args = list(args)
        self.env = dict(env or {})
        self.host = host
        self.picked_port = port is None  # between picking a free port and vLLM binding it, anyone can take it
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self.max_restarts = max_restarts
        self.log_path = Path(log_file) if log_file else None  # a temporary file, made at the first start
        self.restarts = 0
        self._log_start = 0  # where the current process's part of the log begins
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self.ready = threading.Event()  # set while the current process has passed its health check
        self._watchdog: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_from(self, machine: str) -> str:
        """The URL other machines reach the server at. A server listening on every address of this machine
        (`0.0.0.0`, `::`) has a URL that names each client's own machine; it is reached at `machine`, an
        address of this one, instead."""
        if self.host not in ANY_ADDRESS:
            return self.url
        return f"http://{f'[{machine}]' if ':' in machine else machine}:{self.port}"

    @property
    def command(self) -> list[str]:
        return [self.python, "-m", "vllm.entrypoints.openai.api_server", *self.args, "--port", str(self.port)]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def gave_up(self) -> bool:
        """True once the server is down for good (stopped, or out of restarts)."""
        return self._stopping.is_set() or (not self.alive and self.restarts >= self.max_restarts)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, watch: bool = True) -> "VLLMServerProcess":
        """Spawn the server and wait for /health; with `watch`, restart it if it dies before `stop()`."""
        global _cleanup_done
        with _cleanup_once:
            if not _cleanup_done:
                _install_cleanup()
                _cleanup_done = True
        self._stopping.clear()
        _LIVE.add(self)
        try:
            for attempt in range(1, PORT_TRIES + 1):
                with self._lock:
                    self._spawn()
                try:
                    self._wait_healthy()
                    break
                except PortTaken:
                    if not self.picked_port or attempt == PORT_TRIES:
                        raise
                    self._kill_group()  # what the failed server had started (an engine) goes with it
                    log.warning("port %d was taken while the vLLM server started; starting it on another", self.port)
                    self.port = free_port(self.host)  # nobody has the URL yet: workers get it once this is healthy
        except BaseException:
            self.stop()
            raise
        if watch and self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="vllm-watchdog", daemon=True)
            self._watchdog.start()
        return self

    def _spawn(self) -> None:
        self.ready.clear()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "ab") as out:
            self._log_start = out.tell()
            self._proc = subprocess.Popen(
                [self.python, "-c", _REAPER, *self.command],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.info("vLLM server starting (pid/pgid %d, log %s): %s", self._proc.pid, self.log_path, " ".join(self.command))

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._stopping.is_set():
                raise ServerStartError("server stopped while starting")
            if not self.alive:
                message = f"vLLM server exited with code {self._proc.returncode}:\n{self.log_tail()}"
                if PORT_TAKEN in self._this_process_log():
                    raise PortTaken(f"port {self.port} is taken by another process; {message}")
                raise ServerStartError(message)
            if self.healthy():
                log.info("vLLM server healthy at %s (pid %s)", self.url, self.pid)
                self.ready.set()
                return
            time.sleep(0.5)
        raise ServerStartError(f"vLLM server not healthy after {self.startup_timeout_s:.0f}s:\n{self.log_tail()}")

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self.alive:
                continue
            self.ready.clear()
            with self._lock:
                if self._stopping.is_set() or self.alive:
                    continue
                if self.restarts >= self.max_restarts:
                    log.error("vLLM server died and has used its %d restarts", self.max_restarts)
                    return
                self.restarts += 1
                log.warning("vLLM server died (code %s); restart %d/%d", self._proc.returncode, self.restarts, self.max_restarts)
                self._kill_group()
                self._spawn()
            try:
                self._wait_healthy()
            except ServerStartError as exc:
                log.error("restart failed: %s", exc)

    def stop(self, grace_s: float = 15.0) -> None:
        """Terminate the whole process group (vLLM's engine core runs as a child), then kill stragglers."""
        self._stopping.set()
        self.ready.clear()
        with self._lock:
            if self._proc is not None:
                self._kill_group(grace_s)
        _LIVE.discard(self)
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=5)
            self._watchdog = None

    def _kill_group(self, grace_s: float = 15.0) -> None:
        pgid = self._proc.pid
        if self._proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(pgid, signal.SIGKILL)
        self._proc.wait()

    def kill_for_test(self) -> None:
        """Kill the server as a crash would (SIGKILL to the group), leaving the watchdog to restart it."""
        _signal_group(self._proc.pid, signal.SIGKILL)

    def _this_process_log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "VLLMServerProcess":
        return self if self.alive else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
