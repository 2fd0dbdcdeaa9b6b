"""The managed server's lifecycle rules, fast: start, health wait, watchdog restart, group kill, start errors,
with a stand-in for vLLM's API server (tests/llm/fake_vllm.py) on the server's PYTHONPATH."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest

from generators.backends.vllm_process import ServerStartError, VLLMServerProcess
from tests.llm import fake_vllm as fake_vllm_server


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    children = fake_vllm_server.install(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return children


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
    engines = [int(pid) for pid in fake_vllm.read_text().split()]  # the failed start's and the server's
    assert len(engines) == 2 and wait_until(lambda: not any(map(pid_alive, engines)))


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
