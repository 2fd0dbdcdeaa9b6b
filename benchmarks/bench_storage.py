"""What object storage costs a run: the web chain with its input and output on a local S3 server, against local disk.

On a cluster whose nodes share no disk, every file a run touches lives in a bucket: the pages it
reads, its checkpoints and completion markers, its shards, rejects, statistics and report. This
measures what that costs as a user sees it, the whole `pipeline run` process from start to exit:
the same config (extract -> language -> heuristics) run on
- disk: input read from the shared data folder, output to a local folder;
- s3: the same files uploaded to a bucket of a SeaweedFS S3 server on 127.0.0.1 (tests/object_store.py),
  input `s3://bucket/...`, output `s3://bucket/out-N`, the endpoint and keys in the environment as a
  user sets them.
The two sides alternate; the result is the median of each and the median of the paired ratios
(s3 / disk), because the machine is shared, for the whole process and for each phase of a run. Both sides must report the same rows at every stage,
or the comparison is void and the script says so. The server is stopped by the PID it was started
with. A local server has no network latency or bandwidth limit: this is the cost of the S3
protocol and of our storage layer, a lower bound on what a remote store costs.

    python benchmarks/bench_storage.py [--repeats 3] [--corpus pages|warc] [--engine trafilatura|resiliparse]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import storage  # noqa: E402
from tests.object_store import SeaweedS3  # noqa: E402

SHARED = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
CORPORA = {  # name: (input format, folder, file pattern)
    "pages": ("html", SHARED / "extraction" / "trafilatura_eval" / "html", "*.html.gz"),
    "warc": ("warc", SHARED / "warc", "*.warc.gz"),
}


def config(fmt: str, paths: str, engine: str) -> str:
    return json.dumps({
        "name": "bench-storage",
        "input": {"format": fmt, "paths": [paths]},
        "output": {"path": "set-per-run", "formats": ["parquet"]},
        "stages": [
            {"extract": {"engine": engine}},
            {"language": {"keep": ["en", "de"]}},
            {"heuristics": {"rules": ["gopher_repetition", "gopher_quality", "c4", "fineweb"]}},
        ],
    })


def timed(config_file: Path, out: str, env: dict[str, str]) -> tuple[float, dict]:
    """Seconds of the whole process, and the run's stats.json read back from wherever it was written."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--quiet", str(config_file),
                           "--set", f"output.path={out}"], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run -> {out}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return elapsed, json.loads((storage.locate(out) / "stats.json").read_text())


def phases(seconds: float, stats: dict) -> dict[str, float]:
    """Where a run's time went, from its stats.json: before the first stage (checks that look at every
    input, claiming the output, starting Ray); the passes (reading, stages, checkpoints, statistics); the
    write (shards and rejects written, then moved into place); and the rest of the process (interpreter
    start, stats, report, card and manifest, Ray's shutdown, logs copied to the output)."""
    stages = sum(s["wall_s"] or 0 for s in stats["stages"])
    before = stats["time_to_first_stage_s"]
    return {"whole process": seconds, "before the first stage": before, "passes": stages,
            "write": stats["wall_s"] - before - stages, "rest": seconds - stats["wall_s"]}


def rows_by_stage(stats: dict) -> list:
    return [(s["id"], s["rows_in"], s["kept"], s["dropped_by_reason"]) for s in stats["stages"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="pages",
                    help="pages: the 990 gzipped HTML pages (990 objects); warc: the shared WARC files")
    ap.add_argument("--engine", choices=["trafilatura", "resiliparse"], default="trafilatura")
    args = ap.parse_args()
    fmt, folder, pattern = CORPORA[args.corpus]
    files = sorted(folder.glob(pattern))
    if not files:
        raise SystemExit(f"no {pattern} in {folder}; set PIPELINE_SHARED_DATA")
    with tempfile.TemporaryDirectory(prefix="bench_storage_") as tmp_name:
        tmp = Path(tmp_name)
        server = SeaweedS3(tmp / "s3").start()
        try:
            env = {**os.environ, **server.env()}
            os.environ.update(server.env())  # this process uploads and reads stats.json back
            bucket = f"s3://{server.make_bucket('bench')}"
            t0 = time.perf_counter()
            for f in files:
                (storage.locate(bucket) / "input" / f.name).write_bytes(f.read_bytes())
            upload_s = time.perf_counter() - t0
            size_mb = sum(f.stat().st_size for f in files) / 1e6
            configs = {"disk": tmp / "disk.yaml", "s3": tmp / "s3.yaml"}
            configs["disk"].write_text(config(fmt, str(folder / pattern), args.engine))
            configs["s3"].write_text(config(fmt, f"{bucket}/input/{pattern}", args.engine))
            outs = {"disk": lambda i: str(tmp / f"out-{i}"), "s3": lambda i: f"{bucket}/out-{i}"}
            load_before = os.getloadavg()[0]
            times: dict[str, list[dict[str, float]]] = {"disk": [], "s3": []}
            expected = None
            for i in range(args.repeats):
                for side in (("disk", "s3") if i % 2 == 0 else ("s3", "disk")):
                    seconds, stats = timed(configs[side], outs[side](i), env)
                    rows = rows_by_stage(stats)
                    if expected is None:
                        expected = rows
                    elif rows != expected:
                        raise SystemExit(f"{side} run {i} reports other rows than the first run:\n{rows}\n{expected}")
                    times[side].append(phases(seconds, stats))
                    print(f"  run {i} {side:4}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times[side][-1].items()),
                          file=sys.stderr)
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
    kept = ", ".join(f"{stage} {n:,}" for stage, _, n, _ in expected)
    print(f"{len(files)} files ({args.corpus}, {size_mb:.1f} MB, uploaded in {upload_s:.1f} s), engine {args.engine}, "
          f"{args.repeats} repeats, load average {load_before:.1f} -> {load_after:.1f}; "
          f"the same rows and drop reasons at every stage on both sides (kept: {kept})")
    print("| seconds, median (runs) | disk | s3 | s3 / disk, median of paired ratios |")
    print("|---|---|---|---|")
    for phase in times["disk"][0]:
        disk, s3 = ([t[phase] for t in times[side]] for side in ("disk", "s3"))
        ratios = [b / a for a, b in zip(disk, s3) if a > 0]
        print(f"| {phase} | {statistics.median(disk):.1f} {[round(t, 1) for t in disk]} | "
              f"{statistics.median(s3):.1f} {[round(t, 1) for t in s3]} | "
              f"{statistics.median(ratios):.2f}x {[round(r, 2) for r in ratios]} |")


if __name__ == "__main__":
    main()
