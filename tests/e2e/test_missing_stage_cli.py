"""`reweight` without the `domain` stage that adds its column: `pipeline validate` and `pipeline run`
say so in one line and exit 2, before any data is read (the run used to fail after reading it)."""

from __future__ import annotations

from tests.cli import cli


def test_validate_and_run_refuse_reweight_without_a_domain_stage(tmp_path, shared_data):
    config = tmp_path / "c.yaml"
    config.write_text(f"""\
input: {{format: jsonl, paths: ["{shared_data / 'seeds' / 'self_instruct' / 'seed_tasks.jsonl'}"]}}
output: {tmp_path / 'out'}
stages:
  - length: {{min_words: 2}}
  - reweight: {{temperature: 2}}
""")
    expected = f"error: {config}:5: stages[1].reweight: needs column 'domain_label', which the domain stage adds: put one before it\n"
    for command in ("validate", "run"):
        proc = cli(command, config)
        assert (proc.returncode, proc.stderr) == (2, expected), command
    assert not (tmp_path / "out").exists()  # refused before anything was written
