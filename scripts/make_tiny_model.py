"""Build the tiny local Llama that tests, benchmarks and the quickstart serve with vLLM or transformers.

Its tokenizer is trained on the Self-Instruct seed tasks, so prompts from those tasks tokenize into
sensible pieces; the weights are random (generation is noise, but every code path is real).

    python scripts/make_tiny_model.py OUT_DIR [--seeds PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.self_instruct import load_seed_tasks  # noqa: E402
from pipeline.train.tiny import build_tiny_model  # noqa: E402

DEFAULT_SEEDS = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "seeds/self_instruct/seed_tasks.jsonl"


def seed_texts(path: Path) -> list[str]:
    return [text for task in load_seed_tasks(path)
            for text in (task.instruction, *(part for inst in task.instances for part in (inst.get("input"), inst.get("output")) if part))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="seed_tasks.jsonl whose text trains the tokenizer")
    args = parser.parse_args(argv)
    if not args.seeds.exists():
        print(f"error: seed tasks not found at {args.seeds}", file=sys.stderr)
        return 2
    print(build_tiny_model(args.out_dir, seed_texts(args.seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
