"""Engine overhead: a pass-through `pipeline run` vs a hand-written Ray Data read/write, same data, same Ray.

    .venv/bin/python benchmarks/bench_engine.py [--rows 200000] [--repeats 5]

The pass-through pipeline has no stages: it reads JSONL with quarantine, measures every row,
accounts for it, writes Parquet shards, rejects, stats, manifest and report. The peer is the
plain `ray.data.read_json(...).write_parquet(...)` a user would write by hand. Both run in one
Ray session, alternating, and the medians are compared. Then `pipeline run` is started as a
user starts it (a new process, embedded Ray) to time start-up until the first stage begins.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_corpus(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": str(i), "text": f"record {i} " + "lorem " * (i % 30), "url": f"https://h{i % 97}.example/{i}"}) + "\n")


def plain(corpus: Path, out: Path) -> float:
    import ray.data

    t = time.perf_counter()
    ray.data.read_json(str(corpus)).write_parquet(str(out))
    return time.perf_counter() - t


def ours(config: Path) -> float:
    from pipeline.config import load_run
    from pipeline.runner import run

    t = time.perf_counter()
    run(load_run(config))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    corpus = tmp / "corpus.jsonl"
    make_corpus(corpus, args.rows)
    config = tmp / "passthrough.yaml"
    config.write_text(f"input: {{format: jsonl, paths: ['{corpus}']}}\noutput: {{path: '{tmp}/ours', shard_rows: 1000000}}\n")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    plain(corpus, tmp / "warmup")
    times = {"plain": [], "ours": []}
    for r in range(args.repeats):
        shutil.rmtree(tmp / "plain", ignore_errors=True)
        times["plain"].append(plain(corpus, tmp / "plain"))
        times["ours"].append(ours(config))
        print(f"repeat {r}: plain {times['plain'][-1]:.2f}s, pipeline {times['ours'][-1]:.2f}s", flush=True)
    ray.shutdown()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"rows={args.rows:,} repeats={args.repeats}")
    print(f"median plain ray.data read_json->write_parquet: {med['plain']:.2f}s ({args.rows / med['plain']:,.0f} rows/s)")
    print(f"median pipeline run (pass-through):            {med['ours']:.2f}s ({args.rows / med['ours']:,.0f} rows/s)")
    paired = statistics.median(o / p for o, p in zip(times["ours"], times["plain"]))
    print(f"overhead: {100 * (med['ours'] / med['plain'] - 1):+.1f}% of medians, "
          f"{100 * (paired - 1):+.1f}% median of paired runs (target <= +15%)")

    stage_config = tmp / "first_stage.yaml"
    stage_config.write_text(f"input: {{format: jsonl, paths: ['{corpus}'], limit: 1000}}\n"
                            f"output: {{path: '{tmp}/startup_out'}}\nstages:\n  - length: {{min_words: 1}}\n")
    starts = []
    for _ in range(3):
        shutil.rmtree(tmp / "startup_out", ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--quiet", str(stage_config)], check=True,
                       capture_output=True)
        starts.append(json.loads((tmp / "startup_out" / "stats.json").read_text())["time_to_first_stage_s"])
    print(f"time from `pipeline run` start to the first stage (embedded Ray), median of 3: {statistics.median(starts):.2f}s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
