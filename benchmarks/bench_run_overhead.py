"""What telling the truth costs: `pipeline run` as a user runs it, this tree against an earlier commit.

Issue 15 put work around every run (checks before Ray starts, claiming the output folder, the
console filter's pipes and threads, a live progress line, examples of dropped rows in the write
pass) and added one shortcut (a finished output answers without starting Ray). This measures
both ends as the user sees them, the whole process from start to exit:
- fresh: the quickstart config on an empty output folder;
- rerun: the same command again on the finished output (before: every pass resumed from its
  checkpoint and the outputs were rewritten; now: no Ray).
The earlier commit runs from a `git worktree` with the same virtual environment; the two alternate,
and the result is the median of each and of the paired ratios, because the machine is shared.

    python benchmarks/bench_run_overhead.py [--base 0632ac1] [--repeats 3] [--config configs/quickstart.yaml]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(tree: Path, config: str, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # `-m pipeline.cli` imports the tree's own packages
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--quiet", config, "--set", f"output.path={out}"],
                          cwd=tree, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="0632ac1", help="the earlier commit to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--config", default="configs/quickstart.yaml")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_run_"))
    base = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                   capture_output=True)
    trees = {"ours": ROOT, "base": base}
    times: dict[tuple[str, str], list[float]] = {(t, k): [] for t in trees for k in ("fresh", "rerun")}
    try:
        for i in range(args.repeats):
            for name in (("ours", "base") if i % 2 == 0 else ("base", "ours")):
                out = work / f"out-{name}-{i}"
                times[name, "fresh"].append(timed(trees[name], args.config, out))
                times[name, "rerun"].append(timed(trees[name], args.config, out))
                shutil.rmtree(out)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"{args.config}, {args.repeats} repeats, load average {load:.1f}; seconds, whole process")
    for kind in ("fresh", "rerun"):
        ours, theirs = times["ours", kind], times["base", kind]
        ratio = statistics.median(b / o for o, b in zip(ours, theirs))
        print(f"  {kind:5}: ours {statistics.median(ours):6.1f} s {[round(t, 1) for t in ours]}   "
              f"{args.base} {statistics.median(theirs):6.1f} s {[round(t, 1) for t in theirs]}   "
              f"{args.base}/ours {ratio:.2f}x")


if __name__ == "__main__":
    main()
