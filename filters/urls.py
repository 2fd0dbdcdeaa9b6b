"""URL block lists: blocked domains (with all their subdomains) and blocked URL substrings.

Lists are big (the UT1 adult list that RefinedWeb and FineWeb use has millions of domains), so
loading is a plain line scan into a set, and a lookup walks the host's suffixes on label
boundaries: `a.b.example.com` is checked as itself, `b.example.com`, `example.com` and `com`,
so blocking `example.com` blocks every subdomain and never `notexample.com`. Substrings are
matched all at once with an Aho-Corasick automaton (`ahocorasick_rs`, Rust), whose scan cost
does not grow with the number of entries.

Accepted lines: `example.com`, `*.example.com`, `.example.com`, `http://example.com/page`
(the host is taken), hosts-file lines `0.0.0.0 example.com`; blank lines and `#` comments are
skipped. Files may be gzipped.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

from filters.domains import host_of, host_suffixes, normalize_host
from pipeline import storage

_SIMPLE_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
# A line that is not a bare host: a comment, a wildcard or leading dot, a trailing dot,
# whitespace (hosts-file format, stray spaces), a scheme, a path or a port.
_IRREGULAR_LINE = re.compile(r"^(?:[#*.].*|.*[ \t/:].*|.*\.)$", re.MULTILINE)


def read_text(path: str | os.PathLike) -> str:
    """A list file's text, lower-cased; gunzipped when its name ends in .gz; on local disk or in object storage."""
    with storage.open_text(os.fspath(path), errors="replace") as f:
        return f.read().lower()


def read_domains(path: str | os.PathLike) -> set[str]:
    """The hosts a domain list file blocks.

    Made for lists of millions of lines: the file is split and turned into a set in C, and only
    the lines one regex finds irregular (comments, wildcards, URLs, hosts-file lines) are parsed
    one by one.
    """
    text = read_text(path).replace("\r", "")
    irregular = _IRREGULAR_LINE.findall(text) if _may_have_irregular_lines(text) else []
    hosts = set(text.split("\n"))
    hosts.difference_update(irregular)
    hosts.update(domain_entry(line.strip()) for line in irregular if not line.lstrip().startswith("#"))
    hosts.discard("")
    return hosts


def _may_have_irregular_lines(text: str) -> bool:
    """Substring tests run at memory speed; the regex only runs on files that need it."""
    return text.startswith((".", "#", "*")) or any(mark in text for mark in ("\n.", ".\n", "\n#", "\n*", " ", "\t", "/", ":"))


def read_lines(path: str | os.PathLike) -> list[str]:
    """Entries of a list file: stripped, lower-cased, comments and blank lines skipped."""
    return [s for s in (line.strip() for line in read_text(path).splitlines()) if s and not s.startswith("#")]


def domain_entry(entry: str) -> str:
    """A list entry as a bare host; the fast path (a plain host) does no parsing."""
    entry = entry.strip().lower()
    if _SIMPLE_HOST_CHARS.issuperset(entry) and not entry.startswith(".") and not entry.endswith("."):
        return entry
    entry = entry.split()[-1]  # hosts-file format: "0.0.0.0 example.com"
    if "/" in entry or ":" in entry:
        entry = host_of(entry)
    return normalize_host(entry.lstrip("*").lstrip("."))


class UrlBlocklist:
    """Decide whether a URL is blocked and by which list."""

    def __init__(self, domains: Iterable[str] = (), substrings: Iterable[str] = ()):
        self.domains = {d for d in map(domain_entry, domains) if d}
        patterns = sorted({s.lower() for s in substrings if s})
        self._automaton = None
        if patterns:
            import ahocorasick_rs

            self._automaton = ahocorasick_rs.AhoCorasick(patterns, store_patterns=False)
        self.substring_count = len(patterns)

    @classmethod
    def load(
        cls,
        domain_files: Iterable[str | os.PathLike] = (),
        substring_files: Iterable[str | os.PathLike] = (),
        domains: Iterable[str] = (),
        substrings: Iterable[str] = (),
    ) -> "UrlBlocklist":
        """Files and inline entries together; entries are case-insensitive."""
        blocklist = cls(domains, [*substrings, *(e for path in substring_files for e in read_lines(path))])
        for path in domain_files:
            blocklist.domains.update(read_domains(path))
        return blocklist

    def blocked_domain(self, host: str) -> str | None:
        """The listed domain that covers `host` (itself or a parent), or None."""
        return next((suffix for suffix in host_suffixes(host) if suffix in self.domains), None)

    def blocked_substring(self, url: str) -> bool:
        return self._automaton is not None and bool(self._automaton.find_matches_as_indexes(url.lower()))

    def reason(self, url: str | None, host: str | None = None) -> str | None:
        """'domain' or 'url_substring' for a blocked URL, else None. `host` is used when the URL has none."""
        url = url or ""
        if self.domains and self.blocked_domain(host_of(url) or host or ""):
            return "domain"
        if url and self.blocked_substring(url):
            return "url_substring"
        return None
