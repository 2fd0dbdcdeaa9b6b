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


def test_a_validators_message_is_given_in_its_own_words(tmp_path):
    msg = error_of(write(tmp_path, BASE.replace("length: {min_words: 2}", "heuristics: {lang: German}")))
    assert msg.startswith(f"{tmp_path / 'c.yaml'}:5: stages[0].heuristics.lang: 'German' is not a language code")
    assert "Value error" not in msg


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


@pytest.mark.parametrize("text, expected", [
    ("input: {format: jsonl, paths: [a]}\noutput: o\nstages: []\nstages:\n  - length: {}\n",
     ":4: stages: given twice (first at line 3); keep one"),
    ("input: {format: jsonl, paths: [a]}\noutput: o\nstages:\n  - length: {min_words: 5, min_words: 50}\n",
     ":4: stages[0].length.min_words: given twice (first at line 4); keep one"),
])
def test_a_key_given_twice_is_an_error_not_the_last_one_silently(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert error_of(path) == f"{path}{expected}"


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
    twice = write(tmp_path, BASE.replace("stages:\n", "stages:\n  - length: {max_words: 900}\n", 1))
    msg = error_of(twice, ["stages.length.min_words=5"])
    assert "appears 2 times (at 0, 1); put the index before its name: --set stages.0.length.min_words=5" in msg
    assert load_run(twice, ["stages.1.length.min_words=5"]).stages[1].config.min_words == 5


@pytest.mark.parametrize("paths, fmt", [
    (["a.jsonl"], "jsonl"), (["alpaca_data.json"], "jsonl"), (["s3://b/part-*.jsonl.gz"], "jsonl"),
    (["x.parquet", "y.parquet"], "parquet"), (["crawl/*.warc.gz", "old.arc.gz"], "warc"), (["site/*.html"], "html"),
])
def test_an_input_without_format_is_read_by_its_names(paths, fmt):
    from pipeline.config import InputConfig

    assert InputConfig(paths=paths).format == fmt
    assert InputConfig(dataset="openai/gsm8k").format == "hf"


def test_an_input_whose_names_do_not_tell_its_format_says_so(tmp_path):
    path = write(tmp_path, BASE.replace("{format: jsonl, paths: [data.jsonl]}", "{paths: [crawl/, data.jsonl]}"))
    assert "input[0]: give its format (jsonl, parquet, warc, html or hf)" in error_of(path)
    path = write(tmp_path, BASE.replace("{format: jsonl, paths: [data.jsonl]}", "{paths: [a.parquet, b.jsonl]}"))
    assert "the paths are of several formats (jsonl, parquet): give each its own input" in error_of(path)


def test_llm_entries_are_validated_at_load(tmp_path):
    path = write(tmp_path, BASE + "llms:\n  teacher: {backend: vllm_server, model: m, concurency: 4}\n")
    msg = error_of(path)
    assert f"{path}:7: llms.teacher.concurency: unknown key" in msg and "did you mean 'concurrency'" in msg


def test_finetune_section_is_validated_at_load(tmp_path):
    path = write(tmp_path, BASE + "finetune:\n  modle: x\n")
    msg = error_of(path)
    assert f"{path}:7: finetune.modle: unknown key" in msg and "did you mean 'model'" in msg


def errors_of(path, overrides=()) -> list[str]:
    """Every line of the one UserError a config with several mistakes gives."""
    with pytest.raises(UserError) as e:
        load_run(path, list(overrides))
    return str(e.value).splitlines()


def test_every_config_error_is_listed_at_once_in_file_order(tmp_path):
    path = write(tmp_path, """
        name: t
        inputs: {format: jsonl, paths: [data.jsonl]}
        output: out
        stages:
          - length: {min_wrds: 2}
          - dedup: {bnds: 3}
          - lenght: {}
        llms:
          judge: {backend: vllm_server, model: m, concurency: 3}
        """)
    lines = errors_of(path)
    assert len(lines) == 5, lines
    assert lines[0].startswith(f"{path}:2: inputs: unknown key 'inputs'; did you mean 'input'?")
    assert lines[1].startswith(f"{path}:5: stages[0].length.min_wrds: unknown key 'min_wrds'; did you mean 'min_words'?")
    assert lines[2].startswith(f"{path}:6: stages[1].dedup.bnds: unknown key 'bnds'; did you mean 'bands'?")
    assert lines[3].startswith(f"{path}:7: stages[2].lenght: unknown stage 'lenght'; did you mean 'length'?")
    assert lines[4].startswith(f"{path}:9: llms.judge.concurency: unknown key 'concurency'; did you mean 'concurrency'?")
    assert not any("more error" in line for line in lines)


def test_an_entry_that_fits_no_member_of_a_union_names_the_users_key_path(tmp_path):
    """`benchmarks` takes names or {path, fields}: a mapping without `fields` is one error about
    `fields`, not also "not a string", and the key path has no type names in it."""
    path = write(tmp_path, BASE + "  - decontaminate: {benchmarks: [gsm8k, {path: b.jsonl}]}\n")
    assert errors_of(path) == [f"{path}:6: stages[1].decontaminate.benchmarks[1].fields: required key is missing"]


README_LLMS = "llms:\n  teacher: {backend: vllm_server, model: m, api_key: '${QS_UNSET_KEY}'}\n"


def test_unset_env_var_in_an_llm_no_stage_uses_is_not_an_error(tmp_path, monkeypatch):
    """The README's config names a teacher with ${OPENAI_API_KEY} and no stage that uses it."""
    monkeypatch.delenv("QS_UNSET_KEY", raising=False)
    run = load_run(write(tmp_path, BASE + README_LLMS))
    assert [s.name for s in run.stages] == ["length"]


def test_unset_env_var_in_an_llm_a_stage_uses_is_an_error_at_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("QS_UNSET_KEY", raising=False)
    # respond's `llm` defaults to 'teacher': a stage that names it by default uses it too
    path = write(tmp_path, BASE + "  - respond: {}\n" + README_LLMS)
    assert errors_of(path) == [f"{path}:8: llms.teacher.api_key: environment variable QS_UNSET_KEY is not set "
                               "(use ${QS_UNSET_KEY:-default} for a default)"]
    monkeypatch.setenv("QS_UNSET_KEY", "sk-set-now-123")
    assert load_run(path).config.llms["teacher"]["api_key"] == "sk-set-now-123"


def test_unset_env_var_replaced_by_set_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("QS_NOT_SET", raising=False)
    path = write(tmp_path, BASE.replace("min_words: 2", "min_words: '${QS_NOT_SET}'"))
    assert errors_of(path) == [f"{path}:5: stages[0].length.min_words: environment variable QS_NOT_SET is not set "
                               "(use ${QS_NOT_SET:-default} for a default)"]
    assert load_run(path, ["stages.length.min_words=3"]).stages[0].config.min_words == 3


# --- checks before work (pipeline/preflight.py): what the config names, looked at without running --------------


def preflight_errors(path) -> list[str]:
    from pipeline import preflight

    run = load_run(path)
    with pytest.raises(UserError) as e:
        preflight.check(run)
    return str(e.value).splitlines()


def test_preflight_lists_a_glob_matching_nothing_and_a_missing_model_file(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write(tmp_path, f"""
        input:
          - {{format: jsonl, paths: ["{tmp_path}/a.jsonl", "{tmp_path}/none/*.jsonl"]}}
        output: {tmp_path}/out
        stages:
          - length: {{min_words: 2}}
          - quality: {{model: {tmp_path}/quality.bin}}
          - url_filter: {{domain_files: [{tmp_path}/blocked.txt]}}
        """)
    assert preflight_errors(path) == [
        f"{path}:2: input[0].paths[1]: no file matches '{tmp_path}/none/*.jsonl'",
        f"{path}:6: stages[1].quality.model: quality model not found: {tmp_path}/quality.bin",
        f"{path}:7: stages[2].url_filter.domain_files[0]: block list file not found: {tmp_path}/blocked.txt",
    ]
    assert not (tmp_path / "out").exists()


def test_an_output_that_names_a_file_is_refused_before_anything_is_written(tmp_path):
    """It was `[Errno 17] File exists`, which said nothing about what to change."""
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write(tmp_path, f"input: {{paths: [{tmp_path}/a.jsonl]}}\noutput: {tmp_path}/a.jsonl\nstages: []\n")
    assert preflight_errors(path) == [f"{path}:2: output.path: cannot write to {tmp_path}/a.jsonl: it is a file; the "
                                      "output is a folder (of shards, rejects and the report): name a new folder"]
    assert (tmp_path / "a.jsonl").read_text() == '{"text": "x"}\n'


def test_a_ray_address_where_nothing_listens_is_named_before_ray_waits_on_it(tmp_path, monkeypatch):
    """`ray.init` waited minutes on it, printing its retries; a listening port passes."""
    import socket

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens on it once closed
    path = write(tmp_path, f"input: {{paths: [{tmp_path}/a.jsonl]}}\noutput: {tmp_path}/out\nray: {{address: '127.0.0.1:{port}'}}\n"
                           "stages: []\n")
    assert preflight_errors(path) == [f"{path}:3: ray.address: nothing answers at 127.0.0.1:{port} within 3 s: give "
                                      "the head's GCS address (HOST:6379, what `ray start --head` prints), or leave "
                                      "it out for a local Ray"]
    with socket.create_server(("127.0.0.1", port)):
        from pipeline import preflight

        preflight.check(load_run(path))
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    path = write(tmp_path, f"input: {{paths: [{tmp_path}/a.jsonl]}}\noutput: {tmp_path}/out\nstages: []\n")
    assert preflight_errors(path)[0].startswith(f"RAY_ADDRESS: nothing answers at 127.0.0.1:{port}")


def test_preflight_passes_what_exists(tmp_path):
    from pipeline import preflight

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    run = load_run(write(tmp_path, f"""
        input: {{format: jsonl, paths: ["{tmp_path}/*.jsonl"]}}
        output: {tmp_path}/out
        stages:
          - language: {{keep: [en]}}
        """))
    preflight.check(run)


@pytest.fixture
def closed_hub(tmp_path, monkeypatch):
    """A Hub endpoint on a local port nobody listens on, an empty Hub cache, and a fresh probe:
    whatever the machine's network, the Hub is deterministically unreachable."""
    from tests.ports import free_port

    import huggingface_hub.constants

    from pipeline import hub

    port = free_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")  # restored (or removed) after the test, after the probe sets it
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)
    monkeypatch.setattr(hub, "_unreachable", None)
    monkeypatch.delenv("PIPELINE_BENCHMARKS_DIR", raising=False)
    return f"http://127.0.0.1:{port}"


def test_a_registered_benchmark_without_a_local_copy_fails_at_once_when_the_hub_is_unreachable(tmp_path, closed_hub):
    import os

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write(tmp_path, f"""
        input: {{format: jsonl, paths: ["{tmp_path}/a.jsonl"]}}
        output: {tmp_path}/out
        stages:
          - decontaminate: {{benchmarks: [arc]}}
        """)
    [line] = preflight_errors(path)
    assert line.startswith(f"{path}:4: stages[0].decontaminate.benchmarks[0]: benchmark 'arc': no local copy")
    assert f"the Hugging Face Hub ({closed_hub}) did not answer" in line
    assert "arc/*.jsonl*" in line and "benchmarks_dir" in line  # how to give a local copy
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"  # the libraries, and Ray's workers, will not retry for a minute


def test_an_unreachable_hub_is_no_problem_for_a_cached_or_local_benchmark(tmp_path, closed_hub, shared_data):
    from pipeline import preflight

    (tmp_path / "hub-cache" / "datasets--allenai--ai2_arc").mkdir(parents=True)
    path = write(tmp_path, f"""
        input: {{format: jsonl, paths: ["{tmp_path}/a.jsonl"]}}
        output: {tmp_path}/out
        stages:
          - decontaminate: {{benchmarks: [arc, gsm8k], benchmarks_dir: {shared_data / 'benchmarks'}}}
        """)
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    preflight.check(load_run(path))


def test_a_hub_tokenizer_that_cannot_be_reached_is_a_preflight_error(tmp_path, closed_hub):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write(tmp_path, f"""
        input: {{format: jsonl, paths: ["{tmp_path}/a.jsonl"]}}
        output: {tmp_path}/out
        tokenizer: some-org/some-tokenizer
        """)
    assert preflight_errors(path) == [
        f"{path}:3: tokenizer: the Hugging Face Hub ({closed_hub}) did not answer within 3 s and model "
        "'some-org/some-tokenizer' is not in the local cache; give the path of a local tokenizer folder"]


def test_a_tokenizer_folder_that_cannot_load_is_a_preflight_error(tmp_path):
    """It was a traceback in every Ray worker's task (transformers' ValueError naming tokenizer classes)."""
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    path = write(tmp_path, f"""
        input: {{format: jsonl, paths: ["{tmp_path}/a.jsonl"]}}
        output: {tmp_path}/out
        tokenizer: {tmp_path}/model
        """)
    assert preflight_errors(path) == [
        f"{path}:3: tokenizer: the folder {tmp_path}/model has no tokenizer files (tokenizer.json, tokenizer.model, "
        "vocab.json, tokenizer_config.json); give the path of a local tokenizer folder"]
    (tmp_path / "model" / "tokenizer.json").write_text("not json")
    (said,) = preflight_errors(path)
    assert said.startswith(f"{path}:3: tokenizer: cannot load it: ")


def test_finetune_section_may_leave_the_base_model_to_the_command_line(tmp_path):
    """`pipeline finetune --model` gives it, so the section is valid without it, or with it left null."""
    run = load_run(write(tmp_path, BASE + "finetune:\n  model: null\n  lora: {rank: 4}\n"))
    assert run.config.finetune == {"model": None, "lora": {"rank": 4}}
    msg = error_of(write(tmp_path, BASE + "finetune:\n  skip_sft: true\n"))
    assert msg == f"{tmp_path / 'c.yaml'}:6: finetune: skip_sft without dpo.enabled leaves nothing to train"


@pytest.mark.parametrize("stage, said", [
    ("length: {min_words: 50, max_words: 10}", "c.yaml:6: stages[1].length: min_words (50) is above max_words (10): "
                                               "every row would be dropped"),
    ("length: {min_chars: 9, max_chars: 8}", "min_chars (9) is above max_chars (8)"),
    ("reweight: {by: domain, weights: {a: -1, b: 2}}", "stages[1].reweight.weights.a: Input should be greater than or "
                                                       "equal to 0 (got -1)"),
    ("reweight: {by: domain, multipliers: {a: 0}, default_weight: 0}", "stages[1].reweight: every multiplier is 0: "
                                                                       "nothing would be kept"),
])
def test_options_that_would_drop_every_row_are_refused_at_their_line(tmp_path, stage, said):
    assert said in error_of(write(tmp_path, BASE + f"  - {stage}\n"))
    load_run(write(tmp_path, BASE + "  - length: {min_words: 10, max_words: 10}\n"))
    load_run(write(tmp_path, BASE + "  - reweight: {by: domain, multipliers: {spam: 0}}\n"))  # the others stay at 1
