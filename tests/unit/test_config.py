"""Config validation: every error is one line naming the file, line, key path and what was expected."""

from __future__ import annotations

import textwrap

import pytest

from pipeline.config import load_run
from pipeline.errors import UserError


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


BASE = """
name: t
input: {format: jsonl, paths: [data.jsonl]}
output: out
stages:
  - length: {min_words: 2}
"""


def error_of(path, overrides=()) -> str:
    with pytest.raises(UserError) as e:
        load_run(path, list(overrides))
    message = str(e.value)
    assert "\n" not in message
    return message


def test_valid_config_builds_stages_in_order(tmp_path):
    run = load_run(write(tmp_path, BASE + "  - length: {max_words: 9}\n"))
    assert [s.ctx.stage_id for s in run.stages] == ["01-length", "02-length"]
    assert run.stages[0].config.min_words == 2
    assert run.stages[1].config.max_words == 9


def test_unknown_top_level_key_names_line_and_suggests(tmp_path):
    path = write(tmp_path, BASE + "stagse: []\n")
    msg = error_of(path)
    assert msg.startswith(f"{path}:6: stagse: unknown key 'stagse'")
    assert "did you mean 'stages'" in msg


def test_unknown_stage_key_suggests_nearest_field(tmp_path):
    path = write(tmp_path, BASE.replace("min_words: 2", "min_wrds: 2"))
    msg = error_of(path)
    assert msg.startswith(f"{path}:5: stages[0].length.min_wrds: unknown key")
    assert "did you mean 'min_words'" in msg and "valid keys:" in msg


def test_unknown_stage_suggests_nearest_stage(tmp_path):
    path = write(tmp_path, BASE.replace("length", "lenght"))
    msg = error_of(path)
    assert f"{path}:5" in msg and "unknown stage 'lenght'" in msg and "did you mean 'length'" in msg


def test_wrong_type_says_what_was_expected(tmp_path):
    path = write(tmp_path, BASE.replace("min_words: 2", "min_words: many"))
    msg = error_of(path)
    assert f"{path}:5: stages[0].length.min_words:" in msg
    assert "integer" in msg and "'many'" in msg


def test_wrong_literal_lists_choices(tmp_path):
    path = write(tmp_path, BASE.replace("format: jsonl", "format: jsnl"))
    msg = error_of(path)
    assert f"{path}:2: input[0].format" in msg and "did you mean 'jsonl'" in msg


@pytest.mark.parametrize("text, expected", [
    ("- just\n- a list\n", "must be a mapping"),
    ("", "empty"),
    ("a: [unclosed\n", "invalid YAML"),
])
def test_not_a_mapping_or_not_yaml(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert expected in error_of(path)


def test_missing_file():
    assert "config file not found" in error_of("/nonexistent/c.yaml")


def test_missing_required_key(tmp_path):
    path = write(tmp_path, "input: {format: jsonl, paths: [a]}\n")
    assert "output: required key is missing" in error_of(path)


def test_env_interpolation_and_secret_redaction(tmp_path, monkeypatch):
    from pipeline.yaml_source import redact

    monkeypatch.setenv("QS_API_KEY", "sk-very-secret-123")
    path = write(tmp_path, BASE + "llms:\n  teacher: {backend: vllm_server, model: m, api_key: '${QS_API_KEY}'}\n")
    run = load_run(path)
    assert run.config.llms["teacher"]["api_key"] == "sk-very-secret-123"
    assert redact("key=sk-very-secret-123") == "key=***"


def test_missing_env_var_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.delenv("QS_NOT_SET", raising=False)
    path = write(tmp_path, BASE.replace("out\n", "${QS_NOT_SET}\n"))
    msg = error_of(path)
    assert f"{path}:3" in msg and "QS_NOT_SET is not set" in msg
    monkeypatch.setenv("QS_NOT_SET", "elsewhere")
    assert load_run(path).config.output.path == "elsewhere"


def test_env_default(tmp_path, monkeypatch):
    monkeypatch.delenv("QS_OUT", raising=False)
    path = write(tmp_path, BASE.replace("out\n", "${QS_OUT:-fallback}\n"))
    assert load_run(path).config.output.path == "fallback"


def test_set_overrides_by_path_index_and_stage_name(tmp_path):
    path = write(tmp_path, BASE)
    run = load_run(path, ["stages.length.min_words=7", "output.path=o2", "stages.0.length.max_words=50", "seed=3"])
    assert run.stages[0].config.min_words == 7
    assert run.stages[0].config.max_words == 50
    assert run.config.output.path == "o2"
    assert run.config.seed == 3


def test_bad_set_override_is_reported_as_such(tmp_path):
    path = write(tmp_path, BASE)
    assert "--set stages.length.min_words=x" in error_of(path, ["stages.length.min_words=x"])
    assert "no stage named 'dedup'" in error_of(path, ["stages.dedup.bands=3"])
    assert "expected KEY.PATH=VALUE" in error_of(path, ["seed"])


def test_llm_entries_are_validated_at_load(tmp_path):
    path = write(tmp_path, BASE + "llms:\n  teacher: {backend: vllm_server, model: m, concurency: 4}\n")
    msg = error_of(path)
    assert f"{path}:7: llms.teacher.concurency: unknown key" in msg and "did you mean 'concurrency'" in msg


def test_finetune_section_is_validated_at_load(tmp_path):
    path = write(tmp_path, BASE + "finetune:\n  modle: x\n")
    msg = error_of(path)
    assert f"{path}:7: finetune.modle: unknown key" in msg and "did you mean 'model'" in msg
