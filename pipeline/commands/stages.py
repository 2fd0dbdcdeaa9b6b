"""`pipeline stages`: every registered stage with its config fields and defaults."""

from __future__ import annotations

import json

from types import UnionType
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel
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
        required = f.default is PydanticUndefined and f.default_factory is None
        fields[name] = {
            "type": _type_name(f.annotation),
            "default": "(required)" if required else _plain(f.default_factory() if f.default_factory else f.default),
            "help": f.description or "",
        }
    doc = (cls.__doc__ or "").strip().splitlines()
    return {"name": cls.name, "shape": "global" if issubclass(cls, GlobalStage) else "map",
            "summary": doc[0] if doc else "", "fields": fields}


def _type_name(annotation) -> str:
    """A type as a user writes it in YAML: a nested options model is `{its, keys}`, never a class name."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "{" + ", ".join(annotation.model_fields) + "}"
    args = get_args(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args)
    if args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _plain(value):
    """A default as YAML would hold it (nested options as mappings)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
