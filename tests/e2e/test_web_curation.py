"""`pipeline train-classifier` then `pipeline run` with extract -> language -> quality on real WARC files,
plus a WARC of hostile pages and a truncated one: every page is accounted for and the run finishes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cli import cli

ARTICLE = "<p>" + "The committee published its annual report on rail safety, with new figures for every region. " * 10 + "</p>"


def write_hostile_warc(path: Path) -> dict[str, str]:
    """A WARC of bad pages, each labelled text/html as a careless server would; url -> expected reason."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    pages = {
        "http://bad.example/empty": (b"", "empty_html"),
        "http://bad.example/huge": (b"<html><body>" + b"<p>filler text here</p>" * 1_000_000 + b"</body></html>", "html_too_large"),
        "http://bad.example/pdf": (b"%PDF-1.7\n" + bytes(range(256)) * 64, "binary_payload"),
        "http://bad.example/script": (b"<html><head><script>" + b"var a = 1;" * 3000 + b"</script></head><body></body></html>", "empty_extraction"),
        "http://ok.example/mislabelled": (
            f'<html><head><meta charset="utf-8"><title>Bericht</title></head><body><article>{ARTICLE}</article></body></html>'.encode("cp1252"),
            None,
        ),
    }
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, (payload, _) in pages.items():
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=headers))
    return {url: reason for url, (_, reason) in pages.items()}


@pytest.mark.slow
def test_warc_to_scored_documents(shared_data, tmp_path):
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        news = list(csv.reader(f))
    (tmp_path / "sci.txt").write_text("".join(f"{t} {d}\n" for c, t, d in news if c == "4"))
    (tmp_path / "other.txt").write_text("".join(f"{t} {d}\n" for c, t, d in news if c != "4"))
    model = tmp_path / "quality.bin"
    trained = cli("train-classifier", "--positives", str(tmp_path / "sci.txt"), "--negatives", str(tmp_path / "other.txt"),
                  "-o", str(model), "--bucket", "100000")
    assert trained.returncode == 0, trained.stderr
    assert "AUC" in trained.stdout

    expected = write_hostile_warc(tmp_path / "hostile.warc.gz")
    whole = (shared_data / "warc" / "sample-0000.warc.gz").read_bytes()
    (tmp_path / "truncated.warc.gz").write_bytes(whole[: len(whole) // 2])
    warcs = [shared_data / "warc" / "sample-0001.warc.gz", tmp_path / "hostile.warc.gz", tmp_path / "truncated.warc.gz"]
    out = tmp_path / "out"
    config = tmp_path / "web.yaml"
    config.write_text(json.dumps({
        "name": "web",
        "input": {"format": "warc", "paths": [str(p) for p in warcs]},
        "output": {"path": str(out)},
        "stages": [
            {"extract": {"engine": "trafilatura", "timeout_s": 10}},
            {"language": {"keep": ["en"], "min_score": 0.5}},
            {"quality": {"model": str(model), "top_fraction": 0.5}},
        ],
    }))

    run = cli("run", "--quiet", str(config))
    assert run.returncode == 0, run.stderr[-3000:]

    stats = json.loads((out / "stats.json").read_text())
    stages = {s["name"]: s for s in stats["stages"]}
    for s in stats["stages"]:
        assert s["rows_in"] + s.get("added", 0) == s["kept"] + s["dropped"], s["id"]
    extract_drops = stages["extract"]["dropped_by_reason"]
    for reason in ("empty_html", "html_too_large", "binary_payload", "empty_extraction"):
        assert extract_drops.get(reason, 0) >= 1, (reason, extract_drops)
    assert sum(stages["read"]["dropped_by_reason"].values()) >= 1  # the truncated gzip, quarantined by the reader
    assert stages["quality"]["metrics"]["mode"] == "top_fraction"

    table = pq.read_table(sorted((out / "data").glob("*.parquet")))
    rows = table.to_pylist()
    assert rows and {"text", "title", "lang", "lang_score", "quality"} <= set(table.column_names)
    assert all(r["lang"] == "en" and r["text"].strip() for r in rows)
    assert len(rows) == stages["quality"]["kept"] >= stages["quality"]["rows_in"] / 2
    mislabelled = [r for r in rows if r["url"] == "http://ok.example/mislabelled"]
    rejects = [r for p in (out / "rejects").rglob("*.parquet") for r in pq.read_table(p).to_pylist()]
    seen = mislabelled + [r for r in rejects if r.get("url") == "http://ok.example/mislabelled"]
    assert seen and "committee published its annual report" in (seen[0].get("text") or "")
    rejected = {r.get("url"): r.get("reason") for r in rejects}
    for url, reason in expected.items():
        if reason is not None:
            assert rejected.get(url) == reason, url
