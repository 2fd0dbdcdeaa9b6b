"""`pipeline validate CONFIG`: check a config, and what it names, without running anything."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("validate", help="check a config (inputs, model files, benchmarks) and print the stages "
                                        "it would run, pass by pass")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.set_defaults(func=main)


def main(args) -> int:
    from pipeline import preflight
    from pipeline.config import load_run
    from pipeline.passes import plan

    validated = load_run(args.config, args.overrides)
    preflight.check(validated)
    print(f"{args.config}: ok ({len(validated.config.input)} input(s), {len(validated.stages)} stage(s) -> "
          f"{validated.config.output.path})")
    for i, p in enumerate(plan(validated.stages, validated.config.fuse), 1):
        print(f"  pass {i}: {', '.join(p.stage_ids)}")
    return 0
