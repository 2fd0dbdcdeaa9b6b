"""The runner on the shared local Ray: accounting, outputs, resume by fingerprint, secrets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import load_run
from pipeline.runner import run


def make_input(tmp_path: Path, n: int = 600, emails: bool = False) -> Path:
    """Rows of i % 25 words; with `emails`, every tenth also ends with a 300-character address."""
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i in range(n):
            text = " ".join(f"w{j}" for j in range(i % 25))
            if emails and i % 10 == 0:
                text += f" mail {'x' * 300}{i}@example.org"
            f.write(json.dumps({"text": text, "url": f"https://s{i % 5}.example/{i}"}) + "\n")
        f.write("not json\n")
    return path


def config(tmp_path: Path, stages: str, extra: str = "", out: str = "out") -> Path:
    path = tmp_path / f"{out}.yaml"
    path.write_text(f"""
name: engine-test
input: {{format: jsonl, paths: ["{tmp_path}/in.jsonl.gz"]}}
output: {{path: "{tmp_path}/{out}", shard_rows: 200}}
stages:
{stages}
{extra}
""")
    return path


TWO_STAGES = "  - length: {min_words: 5}\n  - length: {max_words: 20}\n"


def test_run_accounts_for_every_row_and_writes_outputs(ray_session, tmp_path):
    make_input(tmp_path)
    result = run(load_run(config(tmp_path, TWO_STAGES)))
    read, first, second = result["stages"]
    assert (read["rows_in"], read["kept"], read["dropped_by_reason"]) == (601, 600, {"bad_json": 1})
    expected_first = sum(1 for i in range(600) if i % 25 < 5)
    assert first["dropped_by_reason"] == {"too_few_words": expected_first}
    assert second["rows_in"] == first["kept"] == 600 - expected_first
    expected_second = sum(1 for i in range(600) if i % 25 > 20)
    assert second["dropped_by_reason"] == {"too_many_words": expected_second}
    assert result["rows_out"] == second["kept"] == second["rows_in"] - expected_second
    assert second["tokens_kept"] == sum(i % 25 for i in range(600) if 5 <= i % 25 <= 20)

    out = tmp_path / "out"
    shards = sorted((out / "data").iterdir())
    assert [p.name for p in shards][0].startswith("part-00000-of-")
    rows = pa.concat_tables([pq.read_table(p) for p in shards])
    assert rows.num_rows == result["rows_out"]
    assert "_drop_reason" not in rows.column_names and "_tokens" not in rows.column_names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == result["rows_out"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    rejects = {p.parent.name: pq.read_table(p) for p in (out / "rejects").rglob("*.parquet")}
    assert set(rejects) == {"00-read", "01-length", "02-length"}
    assert set(rejects["01-length"].column("reason").to_pylist()) == {"too_few_words"}
    assert rejects["00-read"].num_rows == 1
    report = (out / "report.html").read_text()
    assert report.count("<svg") >= 3 and "too_few_words" in report

    import datasets

    loaded = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert len(loaded) == result["rows_out"]


def test_rerun_skips_finished_stages_and_reruns_changed_ones(ray_session, tmp_path):
    make_input(tmp_path)
    unfused = ["fuse=false"]
    first = run(load_run(config(tmp_path, TWO_STAGES), unfused))
    again = run(load_run(config(tmp_path, TWO_STAGES), unfused))
    assert [s["resumed"] for s in again["stages"][1:]] == [True, True]
    assert again["rows_out"] == first["rows_out"]
    changed = run(load_run(config(tmp_path, TWO_STAGES.replace("max_words: 20", "max_words: 10")), unfused))
    assert [s["resumed"] for s in changed["stages"][1:]] == [True, False]
    assert changed["rows_out"] < first["rows_out"]
    upstream = run(load_run(config(tmp_path, TWO_STAGES.replace("min_words: 5", "min_words: 6")), unfused))
    assert [s["resumed"] for s in upstream["stages"][1:]] == [False, False]


def test_fused_stages_report_what_separate_passes_report(ray_session, tmp_path):
    """Map stages share one pass and one checkpoint; each still reports its own rows, sizes and reasons,
    measured as the row left that stage (pii shortens rows after the length filters saw them)."""
    make_input(tmp_path, emails=True)
    stages = TWO_STAGES + "  - pii: {}\n"
    separate = run(load_run(config(tmp_path, stages, out="separate"), ["fuse=false"]))
    fused = run(load_run(config(tmp_path, stages, out="fused")))
    assert [s.get("pass") for s in fused["stages"][1:]] == ["01-length+02-length+03-pii"] * 3
    assert [p.name for p in (tmp_path / "fused" / ".pipeline" / "stages").iterdir()] == ["01-length+02-length+03-pii"]
    fields = ["id", "rows_in", "kept", "dropped_by_reason", "tokens_in", "tokens_kept", "tokens_dropped_by_reason",
              "hist_in", "hist_kept", "metrics"]
    assert [{f: s[f] for f in fields} for s in fused["stages"]] == [{f: s[f] for f in fields} for s in separate["stages"]]
    assert fused["stages"][2]["hist_kept"] != fused["stages"][3]["hist_kept"]
    assert fused["stages"][3]["metrics"]["replaced"]["email"] > 0
    assert all(s["wall_s"] >= 0 for s in fused["stages"][1:])
    shards = sorted((tmp_path / "fused" / "data").glob("*.parquet"))
    columns = pq.read_schema(shards[0]).names
    assert not [c for c in columns if c.startswith("_")], columns
    again = run(load_run(config(tmp_path, stages, out="fused")))
    assert [s["resumed"] for s in again["stages"][1:]] == [True] * 3
    assert [s["kept"] for s in again["stages"]] == [s["kept"] for s in fused["stages"]]
    changed = run(load_run(config(tmp_path, stages.replace("max_words: 20", "max_words: 10"), out="fused")))
    assert [s["resumed"] for s in changed["stages"][1:]] == [False] * 3


def test_secrets_never_reach_outputs(ray_session, tmp_path, monkeypatch):
    make_input(tmp_path)
    monkeypatch.setenv("ENGINE_TEST_KEY", "sk-engine-secret-4242")
    llms = "llms:\n  teacher: {backend: vllm_server, model: m, api_key: '${ENGINE_TEST_KEY}'}\n"
    run(load_run(config(tmp_path, TWO_STAGES, llms)))
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert b"sk-engine-secret-4242" not in path.read_bytes(), path


def test_without_checkpoints_and_without_stages(ray_session, tmp_path):
    make_input(tmp_path)
    no_ckpt = config(tmp_path, TWO_STAGES, out="nock")
    result = run(load_run(no_ckpt, ["output.checkpoint=false", "output.formats=[jsonl, parquet]"]))
    assert not (tmp_path / "nock" / ".pipeline" / "stages" / "01-length").exists()
    lines = sum(1 for p in (tmp_path / "nock" / "data").glob("*.jsonl") for _ in open(p))
    assert lines == result["rows_out"]
    converted = run(load_run(config(tmp_path, "  []", out="conv")))
    assert converted["rows_out"] == 600
    assert converted["stages"][0]["dropped_by_reason"] == {"bad_json": 1}
