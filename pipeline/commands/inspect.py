"""`pipeline inspect OUTPUT`: counts, schema and a few sample rows of a run's output; with `--rejects`,
examples of the rows each stage dropped, per reason (from stats.json, see pipeline.examples). On any
storage, as every command reads: a run's output in object storage is where a cluster's runs write.
Given a fine-tune's folder, where it stands: its phases' last logged steps, checkpoints and adapter."""

from __future__ import annotations

import json

from pipeline.examples import short

LIMIT = 200  # characters of a value printed on the console


def register(sub) -> None:
    p = sub.add_parser("inspect", help="counts, schema and sample rows of a run's output (or where a fine-tune stands)")
    p.add_argument("output", help="a run's output directory, or a fine-tune's, on any storage")
    p.add_argument("-n", "--samples", type=int, default=3)
    p.add_argument("--rejects", action="store_true",
                   help="examples of the dropped rows per stage and reason, and a sample of rejects/")
    p.set_defaults(func=main)


def main(args) -> int:
    import pyarrow.dataset as pads

    from pipeline import storage
    from pipeline.errors import UserError

    out = storage.locate(args.output)
    try:
        manifest = _json(out / "manifest.json")
    except OSError as e:  # a missing bucket, no credentials, an unreachable store
        raise UserError(f"{out}: {storage.first_line(e)}") from None
    if manifest is None:
        if _print_finetune(out):
            return 0
        raise UserError(f"{out}: neither a pipeline run's output (no manifest.json) nor a fine-tune's (no logs/ or adapter/)")
    stats = _json(out / "stats.json")
    print(f"{out}: {manifest['rows']:,} rows")
    if stats:
        for s in stats["stages"]:
            reasons = ", ".join(f"{k} {v:,}" for k, v in s["dropped_by_reason"].items())
            created = f"  created {s['added']:,}" if s.get("added") else ""  # a stage that makes rows (reweight's copies)
            print(f"  {s['id']:<24} in {s['rows_in']:>9,}  kept {s['kept']:>9,}  dropped {s['dropped']:>8,}"
                  + (f"  ({reasons})" if reasons else "") + created)
    if args.rejects and stats:
        _print_examples(stats["stages"], args.samples)
    target = out / ("rejects" if args.rejects else "data")
    files = [f.path for f in target.files() if f.suffix == ".parquet"]
    if not files:
        print(f"(no parquet files under {target})")
        return 0
    dataset = pads.dataset(files, format="parquet", filesystem=out.fs)
    print("schema:")
    for field in dataset.schema:
        print(f"  {field.name}: {field.type}")
    print(f"samples from {target.name}/:")
    for row in dataset.head(args.samples).to_pylist():
        print(json.dumps(short(row, LIMIT), ensure_ascii=False, default=str))
    return 0


def _json(location) -> dict | None:
    """A JSON file's content, or None where there is none (a store's other errors are raised)."""
    try:
        return json.loads(location.read_text())
    except FileNotFoundError:
        return None


def _print_finetune(out) -> bool:
    """Where a fine-tune stands, from what it wrote: its phases' last logged steps, its checkpoints, its
    adapter and evaluation; False if the folder holds none of it."""
    phases = {phase: (out / "logs" / f"{phase}.jsonl") for phase in ("sft", "dpo")}
    logged = {phase: log.read_text().splitlines() for phase, log in phases.items() if log.exists()}
    adapter = _json(out / "adapter" / "adapter_config.json")
    if not logged and adapter is None:
        return False
    base = (adapter or {}).get("base_model_name_or_path")
    print(f"{out}: a fine-tune" + (f" of {base}" if base else "") + (f"; adapter in {out / 'adapter'}" if adapter
                                                                         else "; no adapter yet (training, or stopped)"))
    for phase, lines in logged.items():
        if lines:
            last = json.loads(lines[-1])
            evals = [json.loads(line)["eval_loss"] for line in lines if '"eval_loss"' in line]
            print(f"  {phase}: {len(lines)} step{'s' if len(lines) != 1 else ''} logged, last loss {last['loss']:.4g}"
                  + (f", last eval loss {evals[-1]:.4g}" if evals else "") + f" ({phases[phase]})")
    from pipeline.train.loop import checkpoints

    kept = [f.parent.name for phase in logged for f in checkpoints(out / "checkpoints", phase)]
    if kept and adapter is None:
        print(f"  checkpoints: {', '.join(kept)} (the same `pipeline finetune` command resumes from the last)")
    if (out / "eval" / "eval.md").exists():
        print(f"  evaluation: {out / 'eval' / 'eval.md'}")
    return True


def _print_examples(stages: list[dict], per_reason: int) -> None:
    print("examples of dropped rows, per stage and reason:")
    for s in stages:
        for reason, n in s["dropped_by_reason"].items():
            rows = (s.get("examples") or {}).get(reason, [])[:per_reason]
            if rows:
                print(f"  {s['id']}: {reason} ({n:,} row{'s' if n != 1 else ''})")
                for row in rows:
                    print("    " + json.dumps(short(row, LIMIT), ensure_ascii=False, default=str))
