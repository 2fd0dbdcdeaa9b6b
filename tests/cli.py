"""The CLI as a user runs it: a process of its own, from this Python, its console captured."""
import subprocess
import sys
from pathlib import Path

PIPELINE = [sys.executable, "-m", "pipeline.cli"]
ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout: float = 900, cwd: Path | str = ROOT, **kw) -> subprocess.CompletedProcess:
    """`pipeline ARGS...` to its end, from the repository's root unless `cwd` says otherwise (the
    configs name paths relative to it); `kw` (env) goes to subprocess.run."""
    return subprocess.run([*PIPELINE, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          **kw)
