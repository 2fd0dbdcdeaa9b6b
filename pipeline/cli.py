"""The `pipeline` command. Subcommands live in `pipeline/commands/`, one module each.

User errors (a bad config, a missing file) print one line and exit with code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

from pipeline import interrupts

if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "pipeline":  # the command, not an import of it
    interrupts.install(armed=False)  # before the rest imports: a Ctrl-C then is held, and ends in "interrupted"

import argparse  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402

from pipeline import __version__, commands  # noqa: E402
from pipeline.errors import EXIT_RUN_FAILED, EXIT_USER_ERROR, RunFailed, UserError  # noqa: E402
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command that SIGPIPE ended


def _one_line(e: BaseException) -> str:
    """A UserError as written (a config with three mistakes gives three lines); anything else its first line."""
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        names = [str(n) for n in (e.filename, e.filename2) if n is not None]
        return f"{e.strerror}: {' -> '.join(names)}" if names else e.strerror
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pipeline", description="Curate web data and seed tasks into instruction data on Ray.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"pipeline.commands.{info.name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.print_help()
        return EXIT_USER_ERROR
    interrupts.install()
    _Command.resumes = getattr(args, "resumes", False)
    try:
        code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:  # `pipeline inspect out | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as e:
        if interrupts.interrupted():  # a worker that Ctrl-C stopped first reports that as its error
            return _interrupted()
        cause = _known_cause(e)
        if cause is None:
            raise
        from pipeline.yaml_source import redact  # not at the top: `entry` takes Ctrl-C over only after this module's imports

        print(f"error: {redact(_one_line(cause))}", file=sys.stderr)
        return EXIT_RUN_FAILED if isinstance(cause, RunFailed) else EXIT_USER_ERROR
    return _interrupted() if interrupts.interrupted() else code


class _Command:
    resumes = False  # the command at work resumes from its checkpoints when run again (`run`, `finetune`)


def _interrupted() -> int:
    """Whenever the interrupt lands (inside the command, or around it, as it starts or ends)."""
    interrupts.caught()
    if interrupts.reason():
        print(f"error: {interrupts.reason()}", file=sys.stderr)
    else:
        print("interrupted" + (": the same command resumes from the last checkpoint" if _Command.resumes else ""),
              file=sys.stderr)
    return interrupts.exit_code()


def _known_cause(e: BaseException) -> UserError | RunFailed | OSError | None:
    """What the user can act on behind an exception: our own errors, and the operating system's
    (a path that cannot be written, a full disk). One raised inside a Ray worker arrives wrapped."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        inner = getattr(e, "cause", None)  # a Ray task error: the exception raised in the worker
        if isinstance(e, (UserError, RunFailed, OSError)) and not isinstance(inner, BaseException):
            return e
        e = inner if isinstance(inner, BaseException) else (e.__cause__ or e.__context__)
    return None


def entry() -> None:
    """The `pipeline` command, which ends through `interrupts.finish`: a Ctrl-C after its outcome is
    printed changes nothing.

    Ctrl-C is taken over before the subcommands are imported (a second of numpy, pyarrow and Ray on
    a busy machine), so an interrupt that early is an "interrupted" too, not an import's traceback."""
    try:
        interrupts.install()  # armed: a Ctrl-C held while this module imported is raised here
        code = main()
    except KeyboardInterrupt:
        code = _interrupted()
    interrupts.finish(code)


if __name__ == "__main__":
    entry()
