"""The `pipeline` command as a user runs it: exit codes, one-line errors, listing, inspecting, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cli import PIPELINE, cli


@pytest.mark.parametrize("config, message", [
    ("- a\n- b\n", "must be a mapping"),
    ("input: {format: jsonl, paths: [x]}\noutput: o\nstages:\n  - nosuchstage: {}\n", "unknown stage 'nosuchstage'"),
    ("input: {format: jsonl, paths: [x]}\noutput: o\nstages:\n  - length: {min_words: lots}\n", "min_words"),
])
def test_config_errors_exit_2_with_one_line(tmp_path, config, message):
    path = tmp_path / "c.yaml"
    path.write_text(config)
    for command in ("run", "validate"):
        proc = cli(command, str(path))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_missing_input_files_exit_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"input: {{format: jsonl, paths: ['{tmp_path}/none/*.jsonl']}}\noutput: {tmp_path}/o\n")
    proc = cli("run", "--quiet", str(path))
    assert proc.returncode == 2 and "no file matches" in proc.stderr and "Traceback" not in proc.stderr


def test_every_config_error_is_listed_at_once_with_its_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inputs: {format: jsonl, paths: [x.jsonl]}\noutput: o\nstages:\n  - dedup: {bnds: 3}\n")
    for command in ("validate", "run"):
        proc = cli(command, str(path))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.splitlines() == [
            f"error: {path}:1: inputs: unknown key 'inputs'; did you mean 'input'? (valid keys: name, input, output, "
            "ray, storage, stages, llms, seed, tokenizer, fuse, finetune)",
            f"{path}:4: stages[0].dedup.bnds: unknown key 'bnds'; did you mean 'bands'? (valid keys: "
            + ", ".join(["resources", "method", "field", "shingle", "ngram", "bands", "rows", "num_perm", "threshold",
                         "verify", "hash", "scheme", "seed", "survivor", "quality_column", "index", "index_dir",
                         "against", "boilerplate", "partitions", "batch_size"]) + ")",
        ]


def test_missing_files_are_reported_together_before_ray_starts(tmp_path):
    """A glob that matches nothing and a missing quality model: both, with their lines, and no Ray."""
    (tmp_path / "a.jsonl").write_text('{"text": "one two three"}\n')
    path = tmp_path / "c.yaml"
    path.write_text(f"input:\n  - {{format: jsonl, paths: ['{tmp_path}/a.jsonl']}}\n"
                    f"  - {{format: jsonl, paths: ['{tmp_path}/crawl/*.jsonl']}}\n"
                    f"output: {tmp_path}/out\nstages:\n  - quality: {{model: {tmp_path}/models/quality.bin}}\n")
    for command in ("validate", "run"):
        proc = cli(command, str(path))  # not --quiet: a Ray start would say so
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.splitlines() == [
            f"error: {path}:3: input[1].paths[0]: no file matches '{tmp_path}/crawl/*.jsonl'",
            f"{path}:6: stages[0].quality.model: quality model not found: {tmp_path}/models/quality.bin",
        ]
        assert "Ray" not in proc.stdout + proc.stderr
        assert not (tmp_path / "out").exists()


@pytest.fixture
def unreachable_hub(tmp_path):
    """The environment of a machine whose Hub endpoint does not answer (a local port nobody listens
    on) and whose Hub cache is empty, whatever this machine's network."""
    from tests.ports import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "PIPELINE_BENCHMARKS_DIR")}
    return {**env, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf-home")}


def test_a_benchmark_with_no_local_copy_and_no_hub_is_one_line(tmp_path, unreachable_hub):
    """Offline, a registered benchmark without a local copy is reported by one probe of the Hub,
    naming what is missing and how to give a local copy (it used to be a minute of retries)."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "one two three"}\n')
    endpoint = unreachable_hub["HF_ENDPOINT"]
    report = cli("contamination-report", "--data", str(data), "--benchmarks", "arc", "--out", str(tmp_path / "r"),
                 env=unreachable_hub)
    assert report.returncode == 2 and len(report.stderr.splitlines()) == 1, report.stderr
    assert report.stderr.startswith("error: benchmark 'arc': no local copy (--benchmarks-dir (or PIPELINE_BENCHMARKS_DIR) "
                                    f"is not set) and the Hugging Face Hub ({endpoint}) did not answer")
    assert "put the files of allenai/ai2_arc as arc/*.jsonl* in a folder" in report.stderr
    assert not (tmp_path / "r").exists()

    config = tmp_path / "c.yaml"
    config.write_text(f"input: {{format: jsonl, paths: ['{data}']}}\noutput: {tmp_path}/out\n"
                      "stages:\n  - decontaminate: {benchmarks: [gsm8k, arc]}\n")
    proc = cli("validate", str(config), env={**unreachable_hub, "PIPELINE_BENCHMARKS_DIR": str(tmp_path / "mine")})
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 2, proc.stderr
    assert [line.split(": benchmark ")[1].split(":")[0] for line in proc.stderr.splitlines()] == ["'gsm8k'", "'arc'"]
    assert f"nothing matches {tmp_path}/mine/gsm8k/test.jsonl*" in proc.stderr


def test_finetune_with_a_hub_model_and_no_hub_is_one_line(tmp_path, unreachable_hub):
    proc = cli("finetune", str(tmp_path), "--model", "some-org/some-model", env=unreachable_hub)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"error: model some-org/some-model: the Hugging Face Hub ({unreachable_hub['HF_ENDPOINT']}) "
                                  "did not answer")
    assert "model 'some-org/some-model' is not in the local cache; give the path of a local copy" in proc.stderr


def test_stages_lists_fields_and_defaults():
    proc = cli("stages", "--json")
    assert proc.returncode == 0
    stages = {s["name"]: s for s in json.loads(proc.stdout)}
    assert stages["length"]["fields"]["min_words"]["default"] == 1
    assert "length" in cli("stages").stdout


def write_corpus(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            words = " ".join(f"w{(i * 7 + j) % 1000}" for j in range(i % 40))
            f.write(json.dumps({"text": words, "url": f"https://d{i % 13}.example/p/{i}"}) + "\n")


RESUME_CONFIG = """
name: resume
fuse: {fuse}
input: {{format: jsonl, paths: ["{input}"]}}
output: {{path: "{out}", shard_rows: 50000}}
stages:
  - length: {{min_words: 3}}
  - length: {{max_words: 35, view: text}}
  - length: {{min_chars: 20}}
"""


def output_ids(out: Path) -> list[str]:
    return sorted(i for p in (out / "data").glob("*.parquet") for i in pq.read_table(p, columns=["id"]).column("id").to_pylist())


def unmarked_attempt(stages_dir: Path, pass_id: str) -> bool:
    """A pass is being written: an attempt folder holds files, and no marker names it yet."""
    marker = stages_dir / pass_id / "_SUCCESS.json"
    named = json.loads(marker.read_text())["attempt"] if marker.exists() else None
    return any(a.is_dir() and a.name != named and any(a.iterdir()) for a in (stages_dir / pass_id).glob("*"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    """The corpus the sigkill tests run on, and its uninterrupted output: one run, fused, which gives
    what a pass per stage gives (fusing changes no number, `docs/engine.md`)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    corpus, config = root / "corpus.jsonl", root / "clean.yaml"
    write_corpus(corpus, 300_000)
    config.write_text(RESUME_CONFIG.format(fuse="true", input=corpus, out=root / "clean"))
    clean = cli("run", "--quiet", str(config))
    assert clean.returncode == 0, clean.stderr
    return corpus, root / "clean"


@pytest.mark.slow
@pytest.mark.parametrize("fuse, moment", [(False, "pass"), (True, "pass"), (True, "final write")],
                         ids=["a-pass-per-stage", "fused-pass", "final-write"])
def test_sigkill_mid_stage_then_rerun_gives_the_uninterrupted_output(tmp_path, uninterrupted, fuse, moment):
    """Killed while a pass is being written (with a checkpoint per stage, after stage 1 finished, or
    inside the one fused pass of all three stages), or while the shards are written and moved into
    place; the re-run must equal an uninterrupted run."""
    corpus, clean_out = uninterrupted
    killed_cfg = tmp_path / "killed.yaml"
    killed_cfg.write_text(RESUME_CONFIG.format(fuse=str(fuse).lower(), input=corpus, out=tmp_path / "killed"))

    work = tmp_path / "killed" / ".pipeline"
    stages_dir = work / "stages"
    fused = "01-length+02-length+03-length"
    done_before, killed_pass = {
        "pass": ([], fused) if fuse else (["01-length"], "02-length"), "final write": ([fused], None)}[moment]
    proc = subprocess.Popen([*PIPELINE, "run", "--quiet", str(killed_cfg)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        finished = all((stages_dir / d / "_SUCCESS.json").exists() for d in done_before)
        writing = unmarked_attempt(stages_dir, killed_pass) if killed_pass else any(
            f.is_file() for f in work.glob("write-*/data/*"))
        if finished and writing:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run must be killed while writing {killed_pass or 'its shards'}"
    assert not (tmp_path / "killed" / "manifest.json").exists()
    if killed_pass:
        assert not (stages_dir / killed_pass / "_SUCCESS.json").exists()

    resumed = cli("run", "--quiet", str(killed_cfg))
    assert resumed.returncode == 0, resumed.stderr
    for pass_dir in stages_dir.iterdir():  # the killed run's attempt is cleaned up: each pass holds its marker's
        attempt = json.loads((pass_dir / "_SUCCESS.json").read_text())["attempt"]
        assert sorted(p.name for p in pass_dir.iterdir()) == sorted(["_SUCCESS.json", attempt])
    assert not list(work.glob("write-*")) and not (work / "writing.json").exists()

    stats = json.loads((tmp_path / "killed" / "stats.json").read_text())
    if not fuse:
        assert [s["resumed"] for s in stats["stages"][1:]] == [True, False, False]
    if moment == "final write":
        assert [s["resumed"] for s in stats["stages"][1:]] == [True] * 3
    killed_ids, clean_ids = output_ids(tmp_path / "killed"), output_ids(clean_out)
    assert len(killed_ids) == len(set(killed_ids)) > 0
    assert killed_ids == clean_ids
    clean_stats = json.loads((clean_out / "stats.json").read_text())
    strip = lambda s: [(x["id"], x["rows_in"], x["kept"], x["dropped_by_reason"]) for x in s["stages"]]  # noqa: E731
    assert strip(stats) == strip(clean_stats)

    inspect = cli("inspect", str(tmp_path / "killed"))
    assert inspect.returncode == 0 and f"{len(clean_ids):,} rows" in inspect.stdout
