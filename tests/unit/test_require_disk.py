"""scripts/require_disk.sh, which both setup scripts run first: a disk too small for the environment
is one line and exit 2 before pip starts, not pip's "[Errno 28]" halfway through an install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "require_disk.sh"


def run(gib: int, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(gib), str(folder), "vLLM's environment"], capture_output=True, text=True)


def test_too_little_free_disk_is_one_line_and_exit_2(tmp_path):
    free_gib = shutil.disk_usage(tmp_path).free // 2**30
    short = run(free_gib + 1000, tmp_path / "venvs")
    assert short.returncode == 2 and short.stdout == ""
    [line] = short.stderr.splitlines()
    assert line.startswith(f"error: vLLM's environment needs about {free_gib + 1000} GiB free in {tmp_path / 'venvs'}; it has ")
    assert line.endswith(" MiB")


def test_enough_free_disk_passes_quietly(tmp_path):
    assert run(0, tmp_path / "venvs").returncode == 0
    assert (tmp_path / "venvs").is_dir()  # the folder a venv goes in may not exist yet
