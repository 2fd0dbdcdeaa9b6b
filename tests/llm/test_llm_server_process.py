"""The managed server's lifecycle rules, fast: start, health wait, watchdog restart, group kill, start errors.

A stand-in `vllm.entrypoints.openai.api_server` module (a /health endpoint plus a child process, as
vLLM's engine core is a child of its API server) is put on the server's PYTHONPATH. The real vLLM
server goes through the same code in test_llm_vllm_server.py.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest

from generators.backends.vllm_process import ServerStartError, VLLMServerProcess

FAKE_SERVER = textwrap.dedent("""
    import argparse, subprocess, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--fail", action="store_true")
    args, _ = parser.parse_known_args()
    print("fake vLLM starting", flush=True)
    if args.fail:
        print("ValueError: head size 80 is not supported", flush=True)
        sys.exit(3)
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like vLLM's engine core
    with open(sys.argv[0] + ".children", "a") as f:
        f.write(f"{engine.pid}\\n")
    time.sleep(0.5)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *a):
            pass

    HTTPServer(("127.0.0.1", args.port), Health).serve_forever()
""")


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    module = tmp_path / "vllm" / "entrypoints" / "openai"
    module.mkdir(parents=True)
    for pkg in (tmp_path / "vllm", tmp_path / "vllm" / "entrypoints", module):
        (pkg / "__init__.py").write_text("")
    (module / "api_server.py").write_text(FAKE_SERVER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return module / "api_server.py.children"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_start_restart_after_crash_and_stop_kills_the_whole_group(fake_vllm, tmp_path):
    server = VLLMServerProcess(sys.executable, [], startup_timeout_s=30, max_restarts=2, log_file=tmp_path / "server.log")
    with server:
        assert server.ready.is_set() and server.healthy()
        first_pid = server.pid
        server.kill_for_test()
        assert wait_until(lambda: server.restarts == 1 and server.ready.is_set())
        assert server.pid != first_pid and server.healthy() and not server.gave_up
        children = [int(p) for p in fake_vllm.read_text().split()]
        assert len(children) == 2 and not pid_alive(children[0])  # the crash took the first engine with it
        last_pid = server.pid
    assert not server.ready.is_set() and server.gave_up
    assert wait_until(lambda: not pid_alive(last_pid) and not pid_alive(children[1]), 10)
    assert "fake vLLM starting" in (tmp_path / "server.log").read_text()


def test_server_that_exits_at_start_raises_with_its_log(fake_vllm):
    server = VLLMServerProcess(sys.executable, ["--fail"], startup_timeout_s=30)
    with pytest.raises(ServerStartError, match="exited with code 3") as info:
        server.start()
    assert "head size 80 is not supported" in str(info.value)
    assert not server.alive


def test_a_picked_port_taken_before_the_server_binds_it_is_picked_again(fake_vllm, taken_port, monkeypatch):
    from generators.backends import vllm_process

    picks = iter([taken_port])
    real_pick = vllm_process.free_port
    monkeypatch.setattr(vllm_process, "free_port", lambda host: next(picks, None) or real_pick(host))
    server = VLLMServerProcess(sys.executable, [], startup_timeout_s=30)
    with server:
        assert server.port != taken_port and server.healthy() and server.url.endswith(f":{server.port}")
        assert server.restarts == 0  # a start, not a crash: the watchdog's restarts are all still there


def test_a_port_the_user_chose_that_is_taken_is_an_error_naming_it(fake_vllm, taken_port):
    server = VLLMServerProcess(sys.executable, [], port=taken_port, startup_timeout_s=30)
    with pytest.raises(ServerStartError, match=f"port {taken_port} is taken by another process"):
        server.start()
    assert not server.alive


def test_watchdog_gives_up_after_max_restarts(fake_vllm):
    server = VLLMServerProcess(sys.executable, [], startup_timeout_s=30, max_restarts=0)
    with server:
        server.kill_for_test()
        assert wait_until(lambda: server.gave_up)
        assert server.restarts == 0 and not server.alive


OWNER = textwrap.dedent("""
    import signal, sys, time
    # As under a terminal, even where the suite runs under nohup (SIGHUP ignored) or in the background
    # (SIGINT ignored): both are inherited, and the owner would outlive the signal the test sends.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from generators.backends.vllm_process import VLLMServerProcess
    server = VLLMServerProcess(sys.executable, [], startup_timeout_s=30).start()
    print("READY", server.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_owner_killed_by_signal_leaves_no_server_behind(fake_vllm, tmp_path, sig):
    import signal
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ['PYTHONPATH']}"}
    owner = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = owner.stdout.readline()
        assert line.startswith("READY"), line
        pgid = int(line.split()[1])
        owner.send_signal(getattr(signal, sig))
        assert owner.wait(timeout=90) != 0  # it stops its server first; slow on a loaded machine
        engine = int(fake_vllm.read_text().split()[0])
        assert wait_until(lambda: not pid_alive(pgid) and not pid_alive(engine), 60)  # a loaded machine reaps slowly
    finally:
        if owner.poll() is None:
            owner.kill()
