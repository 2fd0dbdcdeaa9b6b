"""Inputs of many small files, as a user runs them: `pipeline run`, this tree against an earlier commit.

Three inputs, each run by both trees alternately (the earlier commit from a `git worktree` with the same
virtual environment), whole process from start to exit:
- jsonl parts: bench_dedup's e2e corpus (`--docs` documents of 300 real words) split into `--files` JSONL
  files, one `length` stage;
- jsonl one file: the same rows in one file, what the parts should cost;
- web chain: the shared extraction set's 990 pages copied `--copies` times, a file each, through
  extract (resiliparse) -> language -> heuristics -> quality (bench_chain's fastText model), one pass.

    python benchmarks/bench_read_tasks.py --base 8dcd1cd [--repeats 3] [--docs 100000] [--files 1000] [--copies 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_chain import PAGES, quality_model  # noqa: E402
from bench_dedup import e2e_corpus  # noqa: E402
from bench_run_overhead import timed  # noqa: E402


def write_inputs(tmp: Path, docs: int, files: int, copies: int) -> dict[str, Path]:
    """The three configs (JSON is YAML), their inputs written under `tmp`."""
    lines = [json.dumps(d) + "\n" for d in e2e_corpus(docs)]
    parts, one, pages = tmp / "parts", tmp / "one", tmp / "pages"
    for folder in (parts, one, pages):
        folder.mkdir()
    share = -(-len(lines) // files)
    for k in range(files):
        (parts / f"part-{k:05d}.jsonl").write_text("".join(lines[k * share:(k + 1) * share]))
    (one / "all.jsonl").write_text("".join(lines))
    for copy in range(copies):
        for k, page in enumerate(sorted(PAGES.glob("*.html.gz"))):
            shutil.copyfile(page, pages / f"{copy}-{k:04d}.html.gz")
    length = [{"length": {"min_words": 3}}]
    chain = [{"extract": {"engine": "resiliparse"}}, {"language": {"min_score": 0.0}}, {"heuristics": {}},
             {"quality": {"model": str(quality_model(tmp)), "min_score": 0.0}}]
    runs = {"jsonl parts": ("jsonl", parts, length), "jsonl one file": ("jsonl", one, length),
            "web chain": ("html", pages, chain)}
    configs = {}
    for name, (fmt, folder, stages) in runs.items():
        configs[name] = tmp / f"{name.replace(' ', '-')}.yaml"
        configs[name].write_text(json.dumps({"input": {"format": fmt, "paths": [str(folder)]},
                                             "output": {"path": str(tmp / "unused")}, "stages": stages}))
    return configs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the earlier commit to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=1_000)
    ap.add_argument("--copies", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_read_tasks_"))
    base = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True, capture_output=True)
    trees = {"ours": ROOT, "base": base}
    try:
        configs = write_inputs(work, args.docs, args.files, args.copies)
        times: dict[tuple[str, str], list[float]] = {(t, c): [] for t in trees for c in configs}
        for i in range(args.repeats):
            for config in configs:
                for tree in (("ours", "base") if i % 2 == 0 else ("base", "ours")):
                    out = work / f"out-{tree}"
                    times[tree, config].append(timed(trees[tree], str(configs[config]), out))
                    shutil.rmtree(out)
                    print(f"  {config}, {tree}: {times[tree, config][-1]:.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nseconds, whole process, medians of {args.repeats} ({args.docs:,} documents in {args.files:,} files; "
          f"{args.copies} copies of the pages)")
    for config in configs:
        ours, theirs = times["ours", config], times["base", config]
        ratio = statistics.median(b / o for o, b in zip(ours, theirs))
        print(f"| {config} | {statistics.median(ours):.1f} {[round(t, 1) for t in ours]} | "
              f"{statistics.median(theirs):.1f} {[round(t, 1) for t in theirs]} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
