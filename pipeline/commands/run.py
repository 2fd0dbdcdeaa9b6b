"""`pipeline run CONFIG`: run a pipeline, resuming from finished stages."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("run", help="run a pipeline config (resumes from finished stages)")
    p.add_argument("config", help="the YAML config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value, e.g. --set stages.dedup.bands=20 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that holds files this pipeline did not write")
    p.set_defaults(func=main, resumes=True)  # from its checkpoints: said when it is interrupted


def main(args) -> int:
    from pipeline.config import load_run
    from pipeline.progress import Progress
    from pipeline.runner import run

    validated = load_run(args.config, args.overrides)
    run(validated, Progress(enabled=not args.quiet), overwrite=args.overwrite)
    return 0
