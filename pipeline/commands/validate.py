"""`pipeline validate CONFIG`: check a config without running anything."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("validate", help="check a config and print the stages it would run")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.set_defaults(func=main)


def main(args) -> int:
    from pipeline.config import load_run

    validated = load_run(args.config, args.overrides)
    print(f"{args.config}: ok ({len(validated.config.input)} input(s), {len(validated.stages)} stage(s) -> "
          f"{validated.config.output.path})")
    for stage in validated.stages:
        print(f"  {stage.ctx.stage_id}")
    return 0
