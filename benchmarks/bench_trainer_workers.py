"""SFT in one process vs two Ray Train workers (CPU, gloo, DDP) at the same global batch.

Every side runs `pipeline finetune` as a user would, in a fresh process: one process with accumulation
2A, or `--workers 2` with accumulation A, micro batch M, so every optimizer step reads the same
examples. Three sides: one process with torch on both cores (2 threads, the default), one process on
one thread (the per-worker baseline for scaling), and two Ray Train workers of one thread each (Ray
sets OMP_NUM_THREADS=1 for a 1-CPU worker). Training speed is the median of the logged per-step
tokens/s (step 1, the warm-up, left out); wall time includes loading, checks and, for two workers,
starting Ray. The loss curves must be identical. Sides rotate; medians over repeats.

    python benchmarks/bench_trainer_workers.py [--repeats 3] [--steps 10] [--hidden 128] [--layers 2]
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
SHARED = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def build(directory: Path, hidden: int, layers: int) -> tuple[Path, Path]:
    """A tiny Llama and a run directory holding the 175 Self-Instruct seed tasks as instruction rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.train.data import seed_task_chats
    from tiny_models.llama import build_tiny_model

    chats = seed_task_chats(SHARED / "seeds/self_instruct/seed_tasks.jsonl")
    model = build_tiny_model(directory / "model", [m["content"] for c in chats for m in c], vocab_size=3000,
                             hidden_size=hidden, layers=layers, heads=hidden // 64)
    run = directory / "run"
    (run / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"id": str(i), "messages": c} for i, c in enumerate(chats)]),
                   run / "data" / "part-00000.parquet")
    return model, run


SIDES = {"1 process, 2 threads": (1, "2"), "1 process, 1 thread": (1, "1"), "2 workers, 1 thread each": (2, None)}


def finetune(model: Path, run: Path, out: Path, workers: int, threads: str | None, accum: int, micro: int,
             steps: int) -> dict:
    cmd = [sys.executable, "-m", "pipeline.cli", "finetune", str(run), "--model", str(model), "--out", str(out),
           "--workers", str(workers), "--grad-accum", str(accum), "--batch-size", str(micro),
           "--max-steps", str(steps), "--max-seq-len", "256", "--no-resume",
           "--set", "sft.eval_fraction=0", "--set", "sft.sample_prompts=0", "--set", "sft.checkpoint_every=1000000",
           "--set", "sft.warmup_ratio=0"]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env["OMP_NUM_THREADS"] = threads
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{workers} worker(s) failed:\n{done.stderr[-3000:]}")
    log = [json.loads(line) for line in (out / "logs" / "sft.jsonl").read_text().splitlines()]
    return {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in log[1:]), "wall_s": wall,
            "losses": [r["loss"] for r in log]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--micro", type=int, default=4, help="examples per micro batch")
    p.add_argument("--accum", type=int, default=2, help="accumulation per worker with two workers (doubled for one)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    args = p.parse_args()

    names = list(SIDES)
    results: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        model, run = build(Path(tmp), args.hidden, args.layers)
        for repeat in range(args.repeats):
            for i, name in enumerate(names[repeat % 3:] + names[: repeat % 3]):
                workers, threads = SIDES[name]
                out = Path(tmp) / f"out-{repeat}-{i}"
                r = finetune(model, run, out, workers, threads, args.accum * (2 // workers), args.micro, args.steps)
                results[name].append(r)
                print(f"{name}, repeat {repeat}: {r['tokens_per_s']:.0f} tok/s in training, "
                      f"{r['wall_s']:.1f} s wall, final loss {r['losses'][-1]:.4f}", flush=True)

    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    print("\n| side | accumulation | training tokens/s (median) | per repeat | wall s (median) | final loss |")
    print("|---|---:|---:|---|---:|---:|")
    for name, rs in results.items():
        per_repeat = ", ".join(f"{r['tokens_per_s']:.0f}" for r in rs)
        print(f"| {name} | {args.accum * (2 // SIDES[name][0])} | {med(rs, 'tokens_per_s'):.0f} | {per_repeat} | "
              f"{med(rs, 'wall_s'):.1f} | {rs[0]['losses'][-1]:.4f} |")
    two = med(results[names[2]], "tokens_per_s")
    print(f"two workers vs one process on 2 threads: {two / med(results[names[0]], 'tokens_per_s'):.2f}x, "
          f"vs one thread: {two / med(results[names[1]], 'tokens_per_s'):.2f}x training tokens/s")
    curves = [rs[0]["losses"] for rs in results.values()]
    worst = max(abs(x - y) for curve in curves[1:] for x, y in zip(curves[0], curve))
    print(f"largest per-step loss difference between sides: {worst:.2e} over {len(curves[0])} steps")


if __name__ == "__main__":
    main()
