"""`pipeline stages`: every registered stage with its config fields and defaults."""

from __future__ import annotations

import json

from pydantic_core import PydanticUndefined


def register(sub) -> None:
    p = sub.add_parser("stages", help="list the stages with their config fields and defaults")
    p.add_argument("name", nargs="?", help="show one stage only")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=main)


def describe(cls) -> dict:
    from pipeline.stage import GlobalStage

    fields = {}
    for name, f in cls.Config.model_fields.items():
        if name == "resources":
            continue
        default = None if f.default is PydanticUndefined and f.default_factory is None else (
            f.default_factory() if f.default_factory else f.default)
        fields[name] = {
            "type": _type_name(f.annotation),
            "default": default if f.default is not PydanticUndefined or f.default_factory else "(required)",
            "help": f.description or "",
        }
    doc = (cls.__doc__ or "").strip().splitlines()
    return {"name": cls.name, "shape": "global" if issubclass(cls, GlobalStage) else "map",
            "summary": doc[0] if doc else "", "fields": fields}


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    return text or str(annotation).replace("typing.", "")


def main(args) -> int:
    from pipeline import registry
    from pipeline.errors import UserError

    stages = registry.all_stages()
    if args.name:
        if args.name not in stages:
            raise UserError(f"unknown stage '{args.name}'; known: {', '.join(stages)}")
        stages = {args.name: stages[args.name]}
    described = [describe(cls) for cls in stages.values()]
    if args.json:
        print(json.dumps(described, indent=1, default=str))
        return 0
    for d in described:
        print(f"{d['name']}  ({d['shape']} stage)  {d['summary']}")
        for fname, f in d["fields"].items():
            default = json.dumps(f["default"], default=str)
            print(f"    {fname}: {f['type']} = {default}" + (f"  # {f['help']}" if f["help"] else ""))
        print()
    return 0
