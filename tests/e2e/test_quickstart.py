"""The quickstart as a newcomer runs it: through the CLI, on the crawl we ship, every planted problem caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cli import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "out"
    proc = cli("run", "--quiet", "configs/quickstart.yaml", "--set", f"output.path={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def rejects(out: Path, stage: str) -> list[dict]:
    return [r for p in sorted((out / "rejects" / stage).glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_shipped_corpus_matches_its_generator(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_quickstart_corpus.py"), str(tmp_path)], check=True,
                   capture_output=True)
    assert (tmp_path / "crawl.warc.gz").read_bytes() == (ROOT / "configs/quickstart/crawl.warc.gz").read_bytes()


def test_every_row_is_accounted_for(quickstart):
    stats = json.loads((quickstart / "stats.json").read_text())
    for stage in stats["stages"]:
        if stage["added"] == 0:
            assert stage["rows_in"] == stage["kept"] + stage["dropped"], stage["id"]
    data = [r for p in (quickstart / "data").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert len(data) == stats["rows_out"] > 0


def test_planted_problems_are_caught(quickstart):
    by_url = lambda rows: {r["url"]: r["reason"] for r in rows}  # noqa: E731
    extract = by_url(rejects(quickstart, "01-extract"))
    assert extract["https://empty.example/"] and extract["https://broken-cdn.example/logo"]
    language = by_url(rejects(quickstart, "02-language"))
    assert {"https://blog-de.example/de-brot", "https://blog-fr.example/fr-velo"} <= set(language)
    dedup = rejects(quickstart, "05-dedup")
    assert all(r["reason"] == "near_duplicate" and r["dup_of"] for r in dedup)
    for slug, repost in (("bicycles", "https://cycling-weekly.example/repost/bicycles"),
                         ("compost", "https://green-living.example/repost/compost")):
        pair = {f"https://www.everyday-science.example/{slug}", repost}
        assert len(pair & {r["url"] for r in dedup}) == 1, f"one of {pair} survives, the other is its duplicate"
    contaminated = rejects(quickstart, "06-decontaminate")
    assert [r["url"] for r in contaminated] == ["https://study-group.example/week-12"]
    spam_urls = {"https://deals-and-more.example/cheap-pills", "https://deals-and-more.example/lorem"}
    dropped_anywhere = {r["url"] for stage in ("02-language", "03-heuristics") for r in rejects(quickstart, stage)}
    assert spam_urls <= dropped_anywhere


def test_output_is_clean_and_loadable(quickstart):
    import datasets

    rows = datasets.load_dataset(str(quickstart), split="train", cache_dir=str(quickstart.parent / "hf_cache"))
    texts = " ".join(rows["text"])
    assert "garden.coordinator@" not in texts and "<EMAIL>" in texts
    assert "We use cookies" not in texts and "All rights reserved" not in texts
    assert "sourdough" in texts.lower()
    assert (quickstart / "report.html").stat().st_size > 10_000
