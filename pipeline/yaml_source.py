"""YAML loading that remembers where every value came from, and `${ENV}` interpolation.

Config errors must name the line, so the loader keeps a map from key path to line number.
Values taken from the environment are remembered as secrets, so that everything the run
writes (logs, stats, report, manifest) can redact them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError

Path_ = tuple  # a key path: ("stages", 2, "dedup", "bands")

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_secrets: set[str] = set()


def secrets() -> frozenset[str]:
    """Every value interpolated from the environment in this process."""
    return frozenset(s for s in _secrets if len(s) >= 4)


def redact(text: str) -> str:
    for secret in secrets():
        text = text.replace(secret, "***")
    return text


class Located:
    """Parsed YAML data plus the source line of every key path."""

    def __init__(self, data: Any, lines: dict[Path_, int | str], source: str):
        self.data = data
        self.lines = lines
        self.source = source

    def where(self, path: Path_) -> str:
        """`file:line` of the deepest part of `path` that has a position."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if isinstance(line, int):
                return f"{self.source}:{line}"
            if line is not None:
                return line
        return self.source


def load(path: str | Path) -> Located:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError) as e:
        raise UserError(f"{path}: not a readable YAML text file ({e.__class__.__name__})") from None
    return parse(text, str(path))


def parse(text: str, source: str) -> Located:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: invalid YAML: {problem}") from None
    if node is None:
        raise UserError(f"{source}: the config is empty; expected a mapping with 'input', 'output' and 'stages'")
    if not isinstance(node, yaml.MappingNode):
        raise UserError(f"{source}:{node.start_mark.line + 1}: the config must be a mapping (key: value), not a {_kind(node)}")
    lines: dict[Path_, int] = {}
    data = _build(node, (), lines, source)
    return Located(data, lines, source)


def _kind(node: yaml.Node) -> str:
    return {yaml.SequenceNode: "list", yaml.ScalarNode: "single value"}.get(type(node), "mapping")


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], source: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)  # plain scalars only
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, path + (key,), lines, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, source) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader(" ").construct_object(node)
    if isinstance(value, str) and "${" in value:
        value = interpolate(value, f"{source}:{node.start_mark.line + 1}")
    return value


def interpolate(value: str, where: str) -> str:
    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            _secrets.add(os.environ[name])
            return os.environ[name]
        if default is not None:
            return default
        raise UserError(f"{where}: environment variable {name} is not set (use ${{{name}:-default}} for a default)")

    return _ENV.sub(sub, value)


def scalar(text: str) -> Any:
    """A `--set` value, typed as YAML would type it (10 -> int, true -> bool, [a, b] -> list)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
