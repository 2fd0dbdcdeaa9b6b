"""Domain labels from host and URL rules: the cheap, exact way to label web data.

A rules file maps hosts and URLs to labels. URL rules (`url_contains`, `url_regex`) are the
specific ones, so they are tried first, in file order, and the first match wins. Host rules
then match by suffix on label boundaries (`wikipedia.org` matches `en.wikipedia.org`, not
`notwikipedia.org`), and the most specific suffix wins, so `docs.python.org: docs` can
override `python.org: programming` whatever their order in the file.

Accepted files: YAML or JSON holding a list of rules (or `{rules: [...]}`), each rule one of
`{host: ..., label: ...}`, `{url_contains: ..., label: ...}`, `{url_regex: ..., label: ...}`;
or a CSV with the header `match,pattern,label` where `match` is host, url_contains or url_regex.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipeline import storage

MATCH_KINDS = ("host", "url_contains", "url_regex")


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file and the rule."""


@dataclass
class DomainRules:
    hosts: dict[str, str] = field(default_factory=dict)
    url_rules: list[tuple[str, str, str | re.Pattern]] = field(default_factory=list)

    def add(self, kind: str, pattern: str, label: str) -> None:
        if kind == "host":
            self.hosts[normalize_host(pattern)] = label
        elif kind == "url_contains":
            self.url_rules.append((kind, label, pattern))
        elif kind == "url_regex":
            self.url_rules.append((kind, label, re.compile(pattern)))
        else:
            raise RulesError(f"unknown match '{kind}' (expected one of {', '.join(MATCH_KINDS)})")

    def label(self, url: str | None, host: str | None = None) -> str | None:
        """The label of a row from its URL and host (the host is parsed from the URL if not given)."""
        url = url or ""
        for kind, label, pattern in self.url_rules:
            if kind == "url_contains" and pattern in url:
                return label
            if kind == "url_regex" and pattern.search(url):
                return label
        for suffix in host_suffixes(host or host_of(url)):
            if suffix in self.hosts:
                return self.hosts[suffix]
        return None

    def __len__(self) -> int:
        return len(self.hosts) + len(self.url_rules)


def normalize_host(host: str | None) -> str:
    return (host or "").strip().lower().rstrip(".").split(":", 1)[0]


def host_suffixes(host: str | None):
    """`a.b.example.com`, `b.example.com`, `example.com`, `com`: the host, then each parent domain."""
    host = normalize_host(host)
    while host:
        yield host
        host = host.partition(".")[2]


def host_of(url: str) -> str:
    try:
        return urlsplit(url if "//" in url else "//" + url).hostname or ""
    except ValueError:
        return ""


def load_rules(path: str | os.PathLike) -> DomainRules:
    """Read a rules file (YAML, JSON or CSV, by extension), on local disk or in object storage."""
    path = os.fspath(path)
    location = storage.locate(path)
    suffix = location.suffix.lower()
    if suffix == ".csv":
        with storage.open_text(location, newline="") as f:
            entries = [_csv_rule(row) for row in csv.DictReader(f)]
    elif suffix in (".yaml", ".yml", ".json"):
        import yaml

        text = location.read_text()
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        if isinstance(data, dict) and "rules" in data:
            data = data["rules"]
        if not isinstance(data, list):
            raise RulesError(f"{path}: expected a list of rules (or a mapping with key 'rules')")
        entries = [_mapping_rule(item) for item in data]
    else:
        raise RulesError(f"{path}: unknown rules format '{suffix}' (use .yaml, .yml, .json or .csv)")
    rules = DomainRules()
    for i, (kind, pattern, label) in enumerate(entries, start=1):
        try:
            rules.add(kind, pattern, label)
        except (RulesError, re.error) as err:
            raise RulesError(f"{path}: rule {i}: {err}") from None
    return rules


def _mapping_rule(item) -> tuple[str, str, str]:
    if not isinstance(item, dict) or "label" not in item:
        raise RulesError(f"rule {item!r} needs a 'label' and one of {', '.join(MATCH_KINDS)}")
    kinds = [k for k in MATCH_KINDS if k in item]
    extra = set(item) - set(MATCH_KINDS) - {"label"}
    if len(kinds) != 1 or extra:
        raise RulesError(f"rule {item!r} needs exactly one of {', '.join(MATCH_KINDS)} and a 'label'")
    return kinds[0], str(item[kinds[0]]), str(item["label"])


def _csv_rule(row: dict) -> tuple[str, str, str]:
    if not {"match", "pattern", "label"} <= set(row):
        raise RulesError("CSV rules need the header match,pattern,label")
    return row["match"].strip(), row["pattern"].strip(), row["label"].strip()
