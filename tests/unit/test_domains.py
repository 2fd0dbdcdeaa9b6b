"""Host and URL rules for domain labels: precedence, suffix boundaries, the three file formats."""

import json

import pytest

from filters.domains import DomainRules, RulesError, host_of, load_rules


@pytest.fixture
def rules():
    r = DomainRules()
    r.add("host", "python.org", "programming")
    r.add("host", "docs.python.org", "docs")
    r.add("host", "wikipedia.org", "encyclopedia")
    r.add("url_contains", "/blog/", "blog")
    r.add("url_regex", r"^https?://[^/]+/recipes?/", "food")
    return r


@pytest.mark.parametrize(
    "url,label",
    [
        ("https://en.wikipedia.org/wiki/Ray", "encyclopedia"),
        ("https://WWW.Python.org:443/about", "programming"),
        ("https://docs.python.org/3/library", "docs"),
        ("https://notwikipedia.org/x", None),
        ("https://docs.python.org/blog/post", "blog"),
        ("http://example.com/recipe/pie", "food"),
        ("http://example.com/x/recipe/pie", None),
        ("", None),
        ("not a url at all", None),
    ],
)
def test_url_rules_first_then_most_specific_host(rules, url, label):
    assert rules.label(url) == label


def test_host_column_is_used_when_given(rules):
    assert rules.label(None, host="de.wikipedia.org.") == "encyclopedia"


def test_host_of_accepts_urls_without_scheme():
    assert host_of("example.com/path") == "example.com"
    assert host_of("http://[bad") == ""


def test_yaml_json_and_csv_files_give_the_same_rules(tmp_path):
    items = [{"host": "wikipedia.org", "label": "encyclopedia"}, {"url_contains": "/blog/", "label": "blog"}]
    (tmp_path / "r.yaml").write_text("rules:\n  - host: wikipedia.org\n    label: encyclopedia\n  - url_contains: /blog/\n    label: blog\n")
    (tmp_path / "r.json").write_text(json.dumps(items))
    (tmp_path / "r.csv").write_text("match,pattern,label\nhost,wikipedia.org,encyclopedia\nurl_contains,/blog/,blog\n")
    for name in ("r.yaml", "r.json", "r.csv"):
        r = load_rules(tmp_path / name)
        assert len(r) == 2
        assert r.label("https://x.wikipedia.org/a") == "encyclopedia"
        assert r.label("https://x.org/blog/a") == "blog"


@pytest.mark.parametrize(
    "name,text,needle",
    [
        ("r.yaml", "- {host: a.org}\n", "label"),
        ("r.yaml", "- {host: a.org, url_contains: x, label: y}\n", "exactly one"),
        ("r.yaml", "hosts: {a.org: b}\n", "list of rules"),
        ("r.json", '[{"url_regex": "(", "label": "x"}]', "rule 1"),
        ("r.csv", "kind,pattern,label\nhost,a,b\n", "header"),
        ("r.csv", "match,pattern,label\ndomain,a,b\n", "unknown match"),
        ("r.txt", "", "unknown rules format"),
    ],
)
def test_bad_rules_files_name_the_problem(tmp_path, name, text, needle):
    (tmp_path / name).write_text(text)
    with pytest.raises(RulesError, match=needle):
        load_rules(tmp_path / name)


def test_shipped_rules_file_loads_and_labels_by_suffix():
    from pathlib import Path

    rules = load_rules(Path(__file__).resolve().parents[2] / "configs" / "domain_rules.yaml")
    assert rules.label("https://www.nasa.gov/mission") == "government"
    assert rules.label("https://cs.stanford.edu/people") == "education"
    assert rules.label("https://docs.python.org/3/library/os.html") == "docs"
    assert rules.label("https://en.wikipedia.org/wiki/Data") == "encyclopedia"
    assert rules.label("https://example.com/") is None
