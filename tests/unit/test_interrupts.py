"""Ctrl-C's copies that Python cannot raise (in a `__del__`, a fork handler), and the `__del__` failures
of objects it cut short, are not reported as errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import gc, os, signal, sys
from pipeline import interrupts

class Interrupted:
    def __del__(self):
        raise KeyboardInterrupt

class Failing:
    def __del__(self):
        raise ValueError("a real error in __del__")

class CutShort:
    def __init__(self):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands in the constructor
        self.executor = None

    def __del__(self):
        self.executor  # never set

{install}
Interrupted(); gc.collect()
Failing(); gc.collect()
try:
    CutShort()
except KeyboardInterrupt:
    interrupts.caught()
    gc.collect()
    print("interrupted", file=sys.stderr)
signal.signal(signal.SIGINT, signal.default_int_handler)
"""


def _stderr(install: bool) -> str:
    code = SCRIPT.format(install="interrupts.install()" if install else "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT).stderr


def test_an_unraisable_interrupt_is_quiet_and_other_errors_are_still_reported():
    assert "KeyboardInterrupt" in _stderr(install=False)  # what the hook is there for
    stderr = _stderr(install=True)
    assert "KeyboardInterrupt" not in stderr
    assert "Exception ignored" in stderr and "a real error in __del__" in stderr  # before the Ctrl-C
    assert stderr.endswith("interrupted\n") and "AttributeError" not in stderr, stderr  # after it


LATE = """
import atexit, os, signal, time
from pipeline import interrupts

interrupts.install()

def exit_handler():  # where a finished command spends its last moments: stopping what it started
    for _ in range({presses}):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
    print("exit handler finished", flush=True)

atexit.register(exit_handler)
print("done", flush=True)
interrupts.finish(0)
"""


def _finish_with_ctrl_c(presses: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LATE.format(presses=presses)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_a_ctrl_c_after_the_outcome_is_printed_changes_nothing():
    proc = _finish_with_ctrl_c(presses=1)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done\nexit handler finished\n", "")


def test_a_second_ctrl_c_after_the_outcome_exits_at_once():
    proc = _finish_with_ctrl_c(presses=2)
    assert proc.returncode == 130 and proc.stdout == "done\n"
    assert proc.stderr == "interrupted again: exiting now\n"


STOPPED = """
import sys
from pipeline import cli
from pipeline.commands import inspect, run

def stopped(args):
    raise KeyboardInterrupt

run.main = inspect.main = stopped  # Ctrl-C while the command works
sys.exit(cli.main(sys.argv[1:]))
"""


def test_an_interrupted_command_says_whether_running_it_again_resumes():
    """`run` and `finetune` resume from their checkpoints; a bare "interrupted" left the user to guess."""
    for argv, said in ((["run", "c.yaml"], "interrupted: the same command resumes from the last checkpoint\n"),
                       (["inspect", "out"], "interrupted\n")):
        done = subprocess.run([sys.executable, "-c", STOPPED, *argv], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert (done.returncode, done.stderr) == (130, said)


def test_the_command_takes_ctrl_c_over_before_importing_anything_but_the_standard_library():
    """`entry` installs the handlers once `pipeline.cli` is imported; a Ctrl-C before that is Python's own
    traceback. On a loaded machine that window held `import yaml` (a redaction helper), and an interrupt
    0.3 s after the start printed its traceback: the module now imports only the standard library and
    the engine's small modules (errors, interrupts)."""
    probe = ("import sys, pipeline.cli; print(' '.join(sorted(m for m in sys.modules "
             "if m.split('.')[0] not in sys.stdlib_module_names)))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    ours = {"pipeline", "pipeline.cli", "pipeline.commands", "pipeline.errors", "pipeline.interrupts"}
    assert {m for m in loaded if not m.startswith("_") and m not in ours} == set(), loaded


SIGTERM_IN_RAY_INIT = """
import os, signal, sys, time
from pipeline import cli
from pipeline.commands import run

class ForkHook:  # where Python cannot raise what a signal handler raises: it reports it and goes on
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)

def starting_ray(args):
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # ray.init's own handler
    ForkHook()
    time.sleep(10)  # the rest of the run
    print("done")
    return 0

run.main = starting_ray
sys.exit(cli.main(["run", "c.yaml"]))
"""


def test_a_sigterm_that_rays_handler_raises_where_python_cannot_still_stops_the_run():
    """Ray's SIGTERM handler, installed inside `ray.init`, raises SystemExit(15); a signal landing in a fork
    handler made Python print "Exception ignored" and drop it, and the run went on to its "done" (CI, a
    `kill` while Ray started). It stops the run as a SIGTERM does elsewhere."""
    done = subprocess.run([sys.executable, "-c", SIGTERM_IN_RAY_INIT], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (done.returncode, done.stdout) == (143, "")
    assert done.stderr == "interrupted: the same command resumes from the last checkpoint\n"


HELD = """
import os, signal, time
from pipeline import interrupts

interrupts.install(armed=False)  # as the command's module does before its own imports
os.kill(os.getpid(), signal.SIGINT)  # lands while the command is still importing
time.sleep(0.2)
print("still importing", flush=True)
try:
    interrupts.install()  # the command starts
except KeyboardInterrupt:
    print("interrupted", interrupts.exit_code(), flush=True)
"""


def test_a_ctrl_c_while_the_command_imports_is_held_until_it_can_be_caught():
    """CI pressed Ctrl-C 0.3 s into a run on a busy machine: Python's own handler raised it inside the
    command module's `import argparse`, a traceback where "interrupted" was due."""
    done = subprocess.run([sys.executable, "-c", HELD], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.splitlines() == ["still importing", "interrupted 130"]
