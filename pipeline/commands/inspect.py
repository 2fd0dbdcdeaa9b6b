"""`pipeline inspect OUTPUT`: counts, schema and a few sample rows of a run's output; with `--rejects`,
examples of the rows each stage dropped, per reason (from stats.json, see pipeline.examples)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.examples import short

LIMIT = 200  # characters of a value printed on the console


def register(sub) -> None:
    p = sub.add_parser("inspect", help="counts, schema and sample rows of a run's output")
    p.add_argument("output", help="a run's output directory")
    p.add_argument("-n", "--samples", type=int, default=3)
    p.add_argument("--rejects", action="store_true",
                   help="examples of the dropped rows per stage and reason, and a sample of rejects/")
    p.set_defaults(func=main)


def main(args) -> int:
    import pyarrow.dataset as pads

    from pipeline.errors import UserError

    out = Path(args.output)
    manifest = out / "manifest.json"
    if not manifest.exists():
        raise UserError(f"{out}: not a pipeline output (no manifest.json)")
    stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else None
    print(f"{out}: {json.loads(manifest.read_text())['rows']:,} rows")
    if stats:
        for s in stats["stages"]:
            reasons = ", ".join(f"{k} {v:,}" for k, v in s["dropped_by_reason"].items())
            created = f"  created {s['added']:,}" if s.get("added") else ""  # a stage that makes rows (reweight's copies)
            print(f"  {s['id']:<24} in {s['rows_in']:>9,}  kept {s['kept']:>9,}  dropped {s['dropped']:>8,}"
                  + (f"  ({reasons})" if reasons else "") + created)
    if args.rejects and stats:
        _print_examples(stats["stages"], args.samples)
    target = out / ("rejects" if args.rejects else "data")
    files = sorted(target.rglob("*.parquet"))
    if not files:
        print(f"(no parquet files under {target})")
        return 0
    dataset = pads.dataset([str(f) for f in files], format="parquet")
    print("schema:")
    for field in dataset.schema:
        print(f"  {field.name}: {field.type}")
    print(f"samples from {target.name}/:")
    for row in dataset.head(args.samples).to_pylist():
        print(json.dumps(short(row, LIMIT), ensure_ascii=False, default=str))
    return 0


def _print_examples(stages: list[dict], per_reason: int) -> None:
    print("examples of dropped rows, per stage and reason:")
    for s in stages:
        for reason, n in s["dropped_by_reason"].items():
            rows = (s.get("examples") or {}).get(reason, [])[:per_reason]
            if rows:
                print(f"  {s['id']}: {reason} ({n:,} row{'s' if n != 1 else ''})")
                for row in rows:
                    print("    " + json.dumps(short(row, LIMIT), ensure_ascii=False, default=str))
