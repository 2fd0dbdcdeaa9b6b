"""docs/extending.md as a contributor follows it: every titled block, written out and run as the doc says.

Blocks titled with a path are files of the example package `my_ext`, installed as pip would install it
(its modules, and a dist-info holding the entry points its `pyproject.toml` block declares), so the
engine finds the new stages and the new LLM backend the way it finds any installed package's. The
blocks titled `run` and `run answers` hold shell commands, run with `tests/e2e/test_readme.py`'s own
parsing.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from generators.cache import request_key
from tests.e2e.test_readme import commands
from tests.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "extending.md").read_text()
BLOCKS = {title: body for title, body in re.findall(r'^```\w+ title="([^"]+)"\n(.*?)^```', DOC, flags=re.S | re.M)}


def quoted(start: str) -> str:
    """A message the doc quotes in backticks, starting with `start`, on one line."""
    match = re.search(rf"`({re.escape(start)}[^`]*)`", DOC)
    assert match, f"docs/extending.md no longer quotes {start!r}"
    return " ".join(match.group(1).split())


@pytest.fixture(scope="module")
def ext(tmp_path_factory) -> Path:
    """A folder on PYTHONPATH that holds `my_ext` installed: its modules and its entry points."""
    site = tmp_path_factory.mktemp("site")
    for title, body in BLOCKS.items():
        if title.startswith("my_ext/"):
            (site / title).parent.mkdir(parents=True, exist_ok=True)
            (site / title).write_text(body)
    (site / "my_ext" / "__init__.py").touch()
    project = tomllib.loads(BLOCKS["pyproject.toml"])["project"]
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entry_points = "".join(f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items())
                           for group, eps in project["entry-points"].items())
    (dist / "entry_points.txt").write_text(entry_points)
    return site


@pytest.fixture
def with_ext(ext, monkeypatch):
    """`my_ext` importable in this process, and the stages and the backend it registers gone afterwards."""
    from generators import backends
    from pipeline import registry

    registry.all_stages()  # the built-in stages and backends, loaded before my_ext is on the path
    backends.backends()
    monkeypatch.setattr(registry, "_STAGES", dict(registry._STAGES))
    monkeypatch.setattr(backends, "_BACKENDS", dict(backends._BACKENDS))
    monkeypatch.syspath_prepend(str(ext))
    yield ext
    for name in [m for m in sys.modules if m == "my_ext" or m.startswith("my_ext.")]:
        monkeypatch.delitem(sys.modules, name)


def seed_rows(shared_data: Path, n: int) -> pa.Table:
    """The first `n` Self-Instruct seed tasks as the reader makes instruction rows of them."""
    from pipeline.normalize import SCHEMAS, Normalizer

    normalizer = Normalizer("instruction", "seeds")
    lines = (shared_data / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()[:n]
    return pa.Table.from_pylist([normalizer.row(json.loads(line)) for line in lines], schema=SCHEMAS["instruction"])


# --- a filter stage -----------------------------------------------------------------------------


def clone_with(tmp_path: Path, shared_data: Path, config: str) -> Path:
    """A folder laid out as the doc's commands expect: the repository's venv, ../shared/data and the config."""
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data)  # the configs' ../shared/data
    (clone / config).write_text(BLOCKS[config])
    return clone


def run_block(title: str, clone: Path, ext: Path) -> dict[str, subprocess.CompletedProcess]:
    """Each command of a `bash` block, with `my_ext` installed, by its subcommand; each must succeed."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env["PYTHONPATH"] = str(ext)
    ran = {}
    for command in commands(BLOCKS[title]):
        proc = subprocess.run(command.split(), cwd=clone, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
        ran[command.split()[1]] = proc
    return ran


@pytest.mark.slow  # a real `pipeline run`: Ray starts
def test_the_filter_stage_is_listed_and_filters_a_real_run(tmp_path, ext, shared_data):
    clone = clone_with(tmp_path, shared_data, "keywords.yaml")
    ran = run_block("run", clone, ext)
    assert "words: list[str]" in ran["stages"].stdout and "blocked word" in ran["stages"].stdout
    assert quoted("01-keywords: in 40") in " ".join(ran["run"].stderr.split())

    questions = [json.loads(line)["question"] for line in (shared_data / "benchmarks/gsm8k/test.jsonl").open().readlines()[:40]]

    def first_blocked(text: str) -> str | None:
        hits = [(m.start(), w) for w in ("dollars", "money") for m in re.finditer(rf"(?i)(?<![a-z]){w}(?![a-z])", text)]
        return min(hits)[1] if hits else None

    expected = {q: f"keywords.{w}" for q in questions if (w := first_blocked(q))}
    out = clone / "out" / "keywords"
    rejects = pq.read_table(out / "rejects" / "01-keywords").to_pylist()
    assert {r["text"]: r["reason"] for r in rejects} == expected
    assert sorted(pq.read_table(out / "data").column("text").to_pylist()) == sorted(q for q in questions if q not in expected)
    stage = json.loads((out / "stats.json").read_text())["stages"][1]
    assert (stage["name"], stage["rows_in"], stage["kept"]) == ("keywords", 40, 40 - len(expected))


def validate(config, ext) -> subprocess.CompletedProcess:
    """`pipeline validate` of a config that must be refused: one line on stderr, exit 2."""
    env = {**os.environ, "PYTHONPATH": str(ext)}
    proc = cli("validate", str(config), cwd=config.parent, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    return proc


def test_a_filter_stage_option_is_refused_at_load_with_its_line(tmp_path, ext, shared_data):
    config = tmp_path / "keywords.yaml"
    config.write_text(BLOCKS["keywords.yaml"].replace("[dollars, money]", "[]")
                      .replace("../shared/data", str(shared_data)))
    proc = validate(config, ext)
    assert quoted("keywords.yaml:9:") in proc.stderr


# --- an LLM backend -----------------------------------------------------------------------------


@pytest.mark.slow  # a real `pipeline run`: Ray starts
def test_the_backend_is_named_under_llms_and_answers_a_real_run(tmp_path, ext, shared_data, tiny_model):
    """The entry point registers `hf_local` in the CLI and in Ray's workers; its answers are the model's greedy
    answers (the built-in transformers backend's, one request at a time), kept or cut as the model finished."""
    from generators.factory import make_client
    from generators.respond import RespondConfig, respond

    clone = clone_with(tmp_path, shared_data, "answers.yaml")
    config = yaml.safe_load(BLOCKS["answers.yaml"])
    model = config["llms"]["local"]["model"]
    (clone / model).parent.mkdir(parents=True)
    (clone / model).symlink_to(tiny_model)
    run_block("run answers", clone, ext)

    out = clone / config["output"]["path"]
    kept = [{**row, "reason": None} for row in pq.read_table(out / "data").to_pylist()]
    rows = kept + pq.read_table(out / "rejects" / "01-respond").to_pylist()
    seeds = [json.loads(line) for line in (shared_data / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()[:3]]
    questions = [json.loads(line)["question"] for line in (shared_data / "benchmarks/gsm8k/test.jsonl").open().readlines()[:3]]
    by_source = {source: [r for r in rows if r["source"] == source] for source in ("seeds", "gsm8k")}
    assert len(rows) == 6
    assert sorted(r["id"] for r in by_source["seeds"]) == sorted(s["id"] for s in seeds)
    for row in by_source["seeds"]:  # they have an answer: left alone
        [seed] = [s for s in seeds if s["id"] == row["id"]]
        assert row["reason"] is None and row["messages"][-1]["content"] == seed["instances"][0]["output"]

    options = config["stages"][0]["respond"]
    builtin = make_client({"backend": "transformers", "model": str(tiny_model)})
    try:
        expected = {q: respond(builtin, [[{"role": "user", "content": q}]],
                               RespondConfig(temperature=options["temperature"], max_tokens=options["max_tokens"]))[0]
                    for q in questions}
    finally:
        builtin.close()
    assert sorted(r["messages"][0]["content"] for r in by_source["gsm8k"]) == sorted(questions)
    for row in by_source["gsm8k"]:
        answer = expected[row["messages"][0]["content"]]
        assert row["messages"][1] == {"role": "assistant", "content": answer.text.strip()}
        assert row["generated_by"] == model and json.loads(row["meta"])["responder"] == model
        assert row["reason"] == ("response_truncated" if answer.choices[0].finish_reason == "length" else None)


def test_a_misspelt_backend_is_refused_at_load_with_the_registered_ones(tmp_path, ext):
    config = tmp_path / "answers.yaml"
    config.write_text(BLOCKS["answers.yaml"].replace("backend: hf_local", "backend: hf_locl"))
    proc = validate(config, ext)
    assert quoted("answers.yaml:10:") in proc.stderr


def test_the_backend_generates_what_the_model_generates(with_ext, tiny_model, tmp_path):
    """Greedy answers equal the built-in transformers backend's on the same model: the backend runs the model right.
    Both are built from their `llms:` entries, the new one with a response cache, which keeps every answer."""
    from generators.client import Request, SamplingParams
    from generators.factory import make_client

    importlib.import_module("my_ext.hf_local")  # what the entry point imports
    params = SamplingParams(temperature=0.0, max_tokens=24)
    requests = [Request(messages=({"role": "user", "content": "Name three colours."},), params=params),
                Request(prompt="1. Write a poem about the sea.\n2.", params=params)]
    ours = make_client({"backend": "hf_local", "model": str(tiny_model), "cache_dir": str(tmp_path / "cache")})
    builtin = make_client({"backend": "transformers", "model": str(tiny_model)})
    try:
        assert type(ours.inner).__name__ == "HFLocalClient"
        for request in requests:
            a, b = ours.generate([request])[0], builtin.generate([request])[0]
            assert (a.text, a.choices[0].finish_reason, a.usage) == (b.text, b.choices[0].finish_reason, b.usage)
        assert len(ours.cache.get_many([request_key(str(tiny_model), r) for r in requests])) == 2
    finally:
        ours.close()
        builtin.close()


def test_a_failed_request_fails_alone_and_a_failing_endpoint_stops(with_ext, tiny_model):
    from generators.client import EndpointFailing, Request, SamplingParams
    from my_ext.hf_local import HFLocalClient, HFLocalConfig

    client = HFLocalClient(HFLocalConfig(backend="hf_local", model=str(tiny_model), failure_window=2, max_failure_rate=0.5))
    ok = Request(prompt="Hello", params=SamplingParams(max_tokens=4, seed=0))
    unanswerable = Request(prompt="Hello", params=SamplingParams(max_tokens=4, logprobs=1))
    first, second = client.generate([ok, unanswerable])
    assert first.error is None and first.choices
    assert second.error == "ValueError: hf_local does not return logprobs" and not second.choices
    with pytest.raises(EndpointFailing, match="2 of the last 2 requests"):
        client.generate([unanswerable])


def test_the_backend_config_refuses_unknown_keys(with_ext):
    from pydantic import ValidationError

    from my_ext.hf_local import HFLocalConfig

    with pytest.raises(ValidationError, match="replicas"):
        HFLocalConfig(backend="hf_local", model="m", replicas=2)


# --- a generator --------------------------------------------------------------------------------


def test_the_generator_stage_adds_a_row_per_instruction_from_a_real_model(with_ext, tmp_path, shared_data, tiny_model):
    """The stage as a worker runs it, with the built-in transformers backend serving a tiny local model."""
    from pipeline import registry
    from pipeline.config import build_stage
    from pipeline.records import DROP_REASON

    importlib.import_module("my_ext.paraphrase_stage")  # what the entry point imports

    assert registry.get("paraphrase").__name__ == "ParaphraseStage"
    batch = seed_rows(shared_data, 4)
    stage = build_stage("paraphrase", {"max_tokens": 24}, index=1, output_dir=tmp_path, seed=0,
                        llms={"teacher": {"backend": "transformers", "model": str(tiny_model)}})
    assert stage.check() == []
    stage.prepare()
    stage.setup()
    try:
        out = stage.process_batch(batch).to_pylist()
    finally:
        stage.teardown()

    inputs = batch.to_pylist()
    assert [r["id"] for r in out[:4]] == [r["id"] for r in inputs] and all(r[DROP_REASON] is None for r in out[:4])
    new = out[4:]
    assert [r["parent_id"] for r in new] == [r["id"] for r in inputs]
    for row, parent in zip(new, inputs):
        assert row[DROP_REASON] in (None, "truncated", "empty_paraphrase", "unchanged")  # the model answered every request
        assert row["messages"][-1] == parent["messages"][-1] and row["messages"][-1]["role"] == "assistant"
        assert row["generated_by"] == str(tiny_model) and row["source"] == "seeds"
        assert json.loads(row["meta"])["prompt_version"] == {"paraphrase": "paraphrase@1"}


def test_the_generator_keeps_a_new_wording_and_drops_the_rest(with_ext):
    """The algorithm's rules, pinned with a scripted client (its real-model path is tested above)."""
    from my_ext.paraphrase import ParaphraseConfig, paraphrase
    from tests.unit.synthetic.synthetic_fakes import FakeClient, prompt_text

    answers = {
        "Give me a recipe for bread.": "Tell me how to bake bread.",
        "Sort these numbers.": "  sort THESE   numbers. ",
        "Explain gravity.": ("Gravity is the force that", "length"),
        "Write a haiku.": "",
        "Name a planet.": RuntimeError("HTTP 500"),
    }
    client = FakeClient(lambda r: next(v for k, v in answers.items() if k in prompt_text(r)))
    results = paraphrase(client, list(answers), ParaphraseConfig(seed=7))
    assert [(p.text, p.reason) for p in results] == [
        ("Tell me how to bake bread.", None),
        ("sort THESE   numbers.", "unchanged"),
        ("Gravity is the force that", "truncated"),
        ("", "empty_paraphrase"),
        ("", "llm_error"),
    ]
    assert all(r.params.stop == ("\n",) and r.params.seed == 7 for r in client.requests)
