"""YAML loading that remembers where every value came from, and `${ENV}` interpolation.

Config errors must name the line, so the loader keeps a map from key path to line number.
Values taken from the environment are remembered as secrets, so that everything the run
writes (logs, stats, report, manifest) can redact them. A variable that is not set is an error
only where its value is used: the value keeps its `${NAME}` text and its key path is remembered
in `Located.unset`, so that an `llms:` entry no stage names can hold `${OPENAI_API_KEY}` on a
machine without one.
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

    def __init__(self, data: Any, lines: dict[Path_, int | str], source: str, unset: dict[Path_, str] | None = None):
        self.data = data
        self.lines = lines
        self.source = source
        self.unset = unset if unset is not None else {}  # key path -> the variable that is not set

    def unset_problem(self, path: Path_) -> str:
        """The error for the value at `path` when it is used: `file:line: key.path: ... not set`."""
        name = self.unset[path]
        return f"{self.where(path)}: {dotted(path)}: environment variable {name} is not set (use ${{{name}:-default}} for a default)"

    def forget(self, prefix: Path_) -> None:
        """A value replaced (by `--set`) no longer needs its variables."""
        self.unset = {p: n for p, n in self.unset.items() if p[:len(prefix)] != tuple(prefix)}

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
    unset: dict[Path_, str] = {}
    data = _build(node, (), lines, unset, source)
    return Located(data, lines, source, unset)


def _kind(node: yaml.Node) -> str:
    return {yaml.SequenceNode: "list", yaml.ScalarNode: "single value"}.get(type(node), "mapping")


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], unset: dict[Path_, str], source: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)  # plain scalars only
            line = key_node.start_mark.line + 1
            if key in out:  # YAML would keep the last silently: a second `stages:` or option, and the first is lost
                raise UserError(f"{source}:{line}: {dotted(path + (key,))}: given twice (first at line "
                                f"{lines[path + (key,)]}); keep one")
            lines[path + (key,)] = line
            out[key] = _build(value_node, path + (key,), lines, unset, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, unset, source) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader(" ").construct_object(node)
    if isinstance(value, str) and "${" in value:
        missing = [m.group(1) for m in _ENV.finditer(value) if m.group(1) not in os.environ and m.group(2) is None]
        if missing:
            unset[path] = missing[0]
        else:
            value = _ENV.sub(_substitute, value)
    return value


def _substitute(m: re.Match) -> str:
    name, default = m.group(1), m.group(2)
    if name in os.environ:
        _secrets.add(os.environ[name])
        return os.environ[name]
    return default


def dotted(path: Path_) -> str:
    """("stages", 2, "dedup", "bands") -> "stages[2].dedup.bands", as error messages write key paths."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def scalar(text: str) -> Any:
    """A `--set` value, typed as YAML would type it (10 -> int, true -> bool, [a, b] -> list)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
