"""URL block lists: subdomain coverage on label boundaries, substrings, file formats, and a 1M-entry load."""

from __future__ import annotations

import gzip
import random
import string
import time

import pytest

from filters.urls import UrlBlocklist, domain_entry


@pytest.fixture(scope="module")
def blocklist():
    return UrlBlocklist(domains=["example.com", "Bad.Org", "*.ads.net", "sub.site.io"], substrings=["/casino/", "utm_source=spam"])


@pytest.mark.parametrize(
    "url,reason",
    [
        ("https://example.com/page", "domain"),
        ("https://a.b.example.com/x", "domain"),
        ("http://EXAMPLE.COM:8080/", "domain"),
        ("https://bad.org", "domain"),
        ("https://x.ads.net/banner", "domain"),
        ("https://ads.net/", "domain"),
        ("https://deep.sub.site.io/", "domain"),
        ("https://site.io/", None),  # a listed subdomain does not block its parent
        ("https://notexample.com/", None),  # label boundaries, not string suffixes
        ("https://example.com.evil.org/", None),
        ("https://good.org/games/Casino/rules", "url_substring"),
        ("https://good.org/?utm_source=spam&x=1", "url_substring"),
        ("https://good.org/casinos", None),
        ("", None),
        (None, None),
    ],
)
def test_reasons(blocklist, url, reason):
    assert blocklist.reason(url) == reason


def test_host_column_is_used_when_there_is_no_url(blocklist):
    assert blocklist.reason(None, "www.example.com") == "domain"
    assert blocklist.reason("", "good.org") is None


@pytest.mark.parametrize(
    "entry,host",
    [
        ("example.com", "example.com"),
        ("*.example.com", "example.com"),
        (".example.com", "example.com"),
        ("example.com.", "example.com"),
        ("0.0.0.0 tracker.example.com", "tracker.example.com"),
        ("https://www.example.com/some/page", "www.example.com"),
        ("example.com:443", "example.com"),
    ],
)
def test_list_entry_formats(entry, host):
    assert domain_entry(entry) == host


def test_files_plain_and_gzip_with_comments(tmp_path):
    plain = tmp_path / "domains.txt"
    plain.write_text("# adult\n\nexample.com\n  Other.NET  \n")
    zipped = tmp_path / "urls.txt.gz"
    with gzip.open(zipped, "wt") as f:
        f.write("# substrings\n/porn/\n")
    blocklist = UrlBlocklist.load([plain], [zipped])
    assert blocklist.domains == {"example.com", "other.net"}
    assert blocklist.reason("https://x.other.net/a") == "domain"
    assert blocklist.reason("https://ok.org/PORN/1") == "url_substring"
    assert blocklist.reason("https://ok.org/#adult") is None


def test_million_entry_list_loads(tmp_path, capsys):
    rng = random.Random(0)
    letters = string.ascii_lowercase
    domains = tmp_path / "domains.txt"
    names = ["".join(rng.choices(letters, k=10)) + rng.choice([".com", ".net", ".org", ".de"]) for _ in range(1_000_000)]
    domains.write_text("\n".join(names) + "\n")
    substrings = tmp_path / "substrings.txt"
    substrings.write_text("\n".join("/" + "".join(rng.choices(letters, k=12)) for _ in range(100_000)) + "\n")
    t0 = time.perf_counter()
    blocklist = UrlBlocklist.load([domains], [substrings])
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n1,000,000 domains + 100,000 substrings loaded in {seconds:.2f} s")
    assert len(blocklist.domains) == len(set(names))
    assert blocklist.reason(f"https://www.{names[123_456]}/x") == "domain"
    assert blocklist.reason("https://www.not-listed-at-all.com/x") is None


def test_irregular_lines_in_a_big_file_are_parsed(tmp_path):
    path = tmp_path / "hosts.txt"
    path.write_text("plain.com\r\n# comment line\n*.wild.com\n0.0.0.0 hosts.example\nhttps://www.site.org/page\n.dot.net\ntrail.org.\n  spaced.com  \nport.io:8080\n\n")
    assert UrlBlocklist.load([path]).domains == {
        "plain.com", "wild.com", "hosts.example", "www.site.org", "dot.net", "trail.org", "spaced.com", "port.io",
    }
