"""Ctrl-C stops a run, every time; so does SIGTERM (`timeout`, `kill`, a scheduler cancelling a job).

Python turns SIGINT into a KeyboardInterrupt in the main thread, wherever it happens to be. When
that is a `__del__`, a weakref callback or a library's broad `except`, the exception is printed as
"Exception ignored" or swallowed, and the run goes on as if nothing had happened. So the first
Ctrl-C also starts a watchdog: whenever the main thread is not unwinding the interrupt, the
watchdog delivers it again, once a second, until the command has caught it; the copy Python
reports as ignored is not shown, since it is not lost. If stopping takes
longer than `GRACE_S` (cleaning up is stuck), or the user presses Ctrl-C a second time, the
process exits at once with code 130.

Once the command is over and has said so ("done", an error, "interrupted"), `finish` ends the
process: a Ctrl-C from then on has nothing left to stop and is ignored (a second one exits at once).

SIGTERM goes the same way, ending with 143 (128 + its number) where Ctrl-C ends with 130. Ray's core
takes SIGTERM over when it starts in the driver (it printed its C++ stack and died by the signal,
with no word of ours), so `ray_session` calls `install` again once Ray is up; a SIGTERM before that,
inside `ray.init`, reaches Ray's Python handler, whose `sys.exit(15)` is taken for ours, also where
Python could not raise it (a fork handler as Ray starts its processes) and reports it as ignored.
"""

from __future__ import annotations

import _thread
import atexit
import os
import signal
import sys
import threading
import time

from pipeline.errors import EXIT_USER_ERROR

EXIT_CODE = 130  # Ctrl-C's; SIGTERM's is 143; `stop`'s is a user's error (EXIT_USER_ERROR), which the reason names
SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 30.0


class _State:
    interrupted = False  # a Ctrl-C came
    redelivering = False  # the watchdog, not the user, is raising it again
    caught = False  # the command caught it and is on its way out
    finished = False  # the command is over and has printed its outcome
    late = False  # a Ctrl-C came after that
    code = EXIT_CODE  # the exit code of the interrupt that came
    reason: str | None = None  # why the command stopped itself (`stop`), where no signal came
    installed = False
    armed = False  # an interrupt is raised where it lands; unarmed, it is held


def install(armed: bool = True) -> None:
    """Take over SIGINT and SIGTERM for this process (from the main thread, before any work).

    The command's module installs it unarmed before its own imports: no `try` can catch an interrupt
    there yet, so one that comes is held (Python's own handler printed an import's traceback: CI's
    Ctrl-C test, on a busy machine, pressed it 0.3 s in) and raised here when the command arms it."""
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    sys.unraisablehook = _unless_interrupt
    _State.installed = True
    held = armed and not _State.armed and _State.interrupted
    _State.armed = armed
    if held:
        raise KeyboardInterrupt


def reinstall() -> None:
    """Take SIGTERM back from a library that took it over (Ray's core, in `ray.init`), if `install` ran."""
    if _State.installed and threading.current_thread() is threading.main_thread():
        install()


def _unless_interrupt(unraisable) -> None:
    """Python's report of an exception it could not raise, except for an interrupt and for anything
    after one. A KeyboardInterrupt that landed in a fork handler or a `__del__` (Ray forks its
    processes as it starts) is delivered again by the watchdog; so is the SystemExit(15) of Ray's
    SIGTERM handler landing there, which Python would otherwise drop: the run went on to its "done".
    After a Ctrl-C, an object whose constructor it cut short fails in its `__del__` (a Ray Dataset
    without its executor): the interrupt's doing, not news. Either, printed as "Exception ignored",
    reads like a crash."""
    if _State.installed and not _State.interrupted and _is_rays_sigterm(unraisable.exc_value):
        _stop_on(128 + signal.SIGTERM)
    elif not (issubclass(unraisable.exc_type, KeyboardInterrupt) or _State.interrupted):
        sys.__unraisablehook__(unraisable)


def _is_rays_sigterm(e: BaseException | None) -> bool:
    return isinstance(e, SystemExit) and e.code == signal.SIGTERM


def sigterm_in_ray_init(e: BaseException) -> bool:
    """Whether `e` is the SystemExit(15) that Ray's own SIGTERM handler raises when the signal comes inside
    `ray.init`, before `reinstall`: a SIGTERM to stop on, as ours."""
    if _State.installed and _is_rays_sigterm(e):
        _stop_on(128 + signal.SIGTERM)
        return True
    return False


def interrupted() -> bool:
    return _State.interrupted


def stop(reason: str) -> None:
    """Stop the command from another thread, the way Ctrl-C does (wherever the main thread waits, the
    run's own cleanup runs), ending in `reason`: a watch that found the run can never finish."""
    if _State.interrupted or _State.finished:
        return
    _State.reason = reason
    _stop_on(EXIT_USER_ERROR)
    _State.redelivering = True
    _thread.interrupt_main()


def reason() -> str | None:
    """Why the command was stopped by `stop`; None for a signal."""
    return _State.reason


def exit_code() -> int:
    """130 after Ctrl-C, 143 after SIGTERM, 2 after `stop`."""
    return _State.code


def caught() -> None:
    """The command caught the interrupt: the watchdog can rest, and exit handlers run in peace."""
    _State.caught = True


def finish(code: int) -> None:
    """End the process once the command is over: exit handlers run (they stop servers we started),
    then the process ends without the interpreter's teardown. That teardown gives SIGINT back to the
    system's default, so a Ctrl-C landing in it killed a finished run by signal after its "done"
    (exit -2, no word); and after an interrupt, Ray's C++ core, cut short in its start-up, can crash
    in it (exit -11 instead of 130)."""
    _State.finished = True
    if not _State.interrupted:  # what the interpreter's teardown would have waited for
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _on_signal(signum, frame):
    if _State.redelivering:  # the watchdog's copy of the first Ctrl-C
        _State.redelivering = False
        raise KeyboardInterrupt
    if _State.interrupted or _State.late:
        os.write(2, b"interrupted again: exiting now\n")
        os._exit(_State.code)
    if _State.finished:  # the outcome is printed: nothing is left to stop
        _State.late = True
        return
    if not _State.armed:  # held until `install` arms it
        _State.interrupted = True
        _State.code = 128 + signum
        return
    _stop_on(128 + signum)
    raise KeyboardInterrupt


def _stop_on(code: int) -> None:
    _State.interrupted = True
    _State.code = code
    threading.Thread(target=_watchdog, name="interrupt-watchdog", daemon=True).start()


def _watchdog() -> None:
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if _State.caught or _State.finished:
            return
        if not _unwinding_interrupt():
            _State.redelivering = True
            _thread.interrupt_main()
    said = f"error: {_State.reason}\n" if _State.reason else ""
    os.write(2, f"{said}interrupted: stopping took more than {GRACE_S:.0f}s, exiting now\n".encode())
    os._exit(_State.code)


def _unwinding_interrupt() -> bool:
    """Whether the main thread is on its way out with the interrupt (in an `except` or `finally` it set off)."""
    current = sys._current_exceptions().get(threading.main_thread().ident)
    value = current[1] if isinstance(current, tuple) else current  # an exc_info tuple before Python 3.12
    return isinstance(value, KeyboardInterrupt)
