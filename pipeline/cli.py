"""The `pipeline` command. Subcommands live in `pipeline/commands/`, one module each.

User errors (a bad config, a missing file) print one line and exit with code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from pipeline import __version__, commands
from pipeline.errors import UserError
from pipeline.yaml_source import redact

EXIT_USER_ERROR = 2


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
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        cause = _user_error_cause(e)
        if cause is None:
            raise
        print(f"error: {redact(str(cause))}", file=sys.stderr)
        return EXIT_USER_ERROR


def _user_error_cause(e: BaseException) -> UserError | None:
    """A UserError raised inside a Ray worker arrives wrapped; find it."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, UserError):
            return e
        inner = getattr(e, "cause", None)
        e = inner if isinstance(inner, BaseException) else (e.__cause__ or e.__context__)
    return None


if __name__ == "__main__":
    sys.exit(main())
