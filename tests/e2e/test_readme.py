"""The README as written: every command in its code blocks and prose, and its example config, run on an
offline clone without any environment variable set, in the order a newcomer reads them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SETUP_COMMANDS = {"./scripts/quickstart.sh", "./scripts/test.sh"}  # the two a newcomer starts with


def code_blocks() -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """Shell lines of a block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [re.split(r"\s{2,}#", line)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def inline_commands() -> list[str]:
    """Runnable commands quoted in the prose (`.venv/bin/...`), as opposed to synopses with placeholders."""
    return re.findall(r"`(\.venv/bin/[^`]+)`", README)


def test_the_readme_gives_exactly_two_setup_commands():
    shell_blocks = [commands(text) for lang, text in code_blocks() if lang in ("", "bash", "sh")]
    assert [b for b in shell_blocks if set(b) & SETUP_COMMANDS] == [["./scripts/quickstart.sh"], ["./scripts/test.sh"]]
    quickstart = (ROOT / "scripts" / "quickstart.sh").read_text()
    assert 'bash scripts/setup.sh' in quickstart and '.venv/bin/pipeline run configs/quickstart.yaml' in quickstart


@pytest.mark.slow
def test_every_command_and_config_runs_as_written(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("configs", "scripts", ".venv"):
        (clone / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PIPELINE_BENCHMARKS_DIR", "RAY_ADDRESS")}

    def sh(command: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(shlex.split(command), cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
        return proc

    ran = []
    sh(".venv/bin/pipeline run configs/quickstart.yaml")  # what ./scripts/quickstart.sh runs once set up
    for lang, text in code_blocks():
        if lang == "yaml":
            (clone / "readme.yaml").write_text(text)
            sh(".venv/bin/pipeline validate readme.yaml")
            out = sh(".venv/bin/pipeline run readme.yaml")
            assert "done" in out.stderr
            ran.append("readme.yaml")
        elif lang in ("", "bash", "sh"):
            for command in commands(text):
                if command not in SETUP_COMMANDS:
                    sh(command)
                    ran.append(command)
    for command in inline_commands():
        sh(command)
        ran.append(command)
    assert "readme.yaml" in ran and any("contamination-report" in c for c in ran) and any("inspect" in c for c in ran)
    assert (clone / "out" / "leaks" / "report.json").is_file()
    assert (clone / "out" / "run1" / "manifest.json").is_file()
