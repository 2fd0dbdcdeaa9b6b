"""Build the tiny local Llama that tests, benchmarks and the quickstart serve with vLLM or transformers.

Its tokenizer is trained on the Self-Instruct seed tasks, so prompts from those tasks tokenize into
sensible pieces. By default the weights are random (generation is noise, but every code path is
real). With --train-on-seeds the model is then fully fine-tuned for a few minutes on CPU, with our
SFT loop, on our generation prompts answered from the seed tasks (tiny_models/teacher.py),
so Self-Instruct and Evol-Instruct runs against it accept some of what it writes.

A trained model is cached: OUT_DIR/teaching.json records a fingerprint of the seeds, the examples it
learns, the code that builds and trains it and the options, and a second call with the same
fingerprint returns at once.

    python scripts/make_tiny_model.py OUT_DIR [--seeds PATH]
    python scripts/make_tiny_model.py models/tiny-llama-seeds --train-on-seeds [--steps N]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.self_instruct import load_seed_tasks  # noqa: E402
from tiny_models.llama import build_tiny_model  # noqa: E402

DEFAULT_SEEDS = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "seeds/self_instruct/seed_tasks.jsonl"
# The code that builds and trains the model. The prompts it learns are fingerprinted as the examples
# themselves: an edit of a generator that leaves its prompts as they were does not retrain it.
SHAPING_CODE = ["tiny_models/llama.py", "tiny_models/teacher.py", "pipeline/train/sft.py", "pipeline/train/data.py",
                "pipeline/train/loop.py"]


def seed_texts(path: Path) -> list[str]:
    return [text for task in load_seed_tasks(path)
            for text in (task.instruction, *(part for inst in task.instances for part in (inst.get("input"), inst.get("output")) if part))]


def fingerprint(seeds: Path, options: dict) -> str:
    from tiny_models.teacher import teaching_examples

    h = hashlib.sha256(seeds.read_bytes())
    for name in SHAPING_CODE:
        h.update((ROOT / name).read_bytes())
    examples = teaching_examples(load_seed_tasks(seeds), copies=options["copies"], seed=options["seed"])
    h.update(json.dumps([dataclasses.asdict(e) for e in examples], sort_keys=True).encode())
    h.update(json.dumps(options, sort_keys=True).encode())
    return h.hexdigest()


def trained_model(out_dir: Path, seeds: Path, steps: int, seed: int, copies: int) -> Path:
    """The trained model in out_dir, built (in a temporary sibling, then moved in place) unless cached."""
    from tiny_models.teacher import teach

    options = {"steps": steps, "seed": seed, "copies": copies}
    key = fingerprint(seeds, options)
    record = out_dir / "teaching.json"
    if record.exists() and json.loads(record.read_text()).get("fingerprint") == key:
        print(f"cached: {out_dir} (fingerprint matches)", file=sys.stderr)
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        start = time.perf_counter()
        build_tiny_model(work, seed_texts(seeds), seed=seed)
        summary = teach(work, load_seed_tasks(seeds), **options)
        summary.update(fingerprint=key, seconds=round(time.perf_counter() - start, 1))
        (work / "teaching.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"trained in {summary['seconds']} s: loss {summary['first_loss']} -> {summary['final_loss']}", file=sys.stderr)
        shutil.rmtree(out_dir, ignore_errors=True)
        work.rename(out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="seed_tasks.jsonl whose text trains the tokenizer (and the model)")
    parser.add_argument("--train-on-seeds", action="store_true", help="fine-tune on our prompts answered from the seed tasks")
    parser.add_argument("--steps", type=int, default=1200, help="optimizer steps of 4 packed examples (--train-on-seeds)")
    parser.add_argument("--copies", type=int, default=3, help="passes over the seeds when building examples (--train-on-seeds)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.seeds.exists():
        print(f"error: seed tasks not found at {args.seeds}", file=sys.stderr)
        return 2
    if args.train_on_seeds:
        print(trained_model(args.out_dir, args.seeds, args.steps, args.seed, args.copies))
    else:
        print(build_tiny_model(args.out_dir, seed_texts(args.seeds), seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
