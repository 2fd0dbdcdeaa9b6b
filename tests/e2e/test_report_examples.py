"""Why was this row dropped? `pipeline run` through the CLI on a JSONL file with a bad line and rows too
short and too long: the report, stats.json and `pipeline inspect --rejects` show examples of each
reason, the quarantined line with where it came from, and a resumed re-run shows the same."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli import cli

BAD_LINE = 7


def write_input(path: Path) -> None:
    lines = [json.dumps({"id": f"ok-{i}", "text": " ".join(f"word{j}" for j in range(5 + i))}) for i in range(10)]
    lines += [json.dumps({"id": f"short-{i}", "text": "hello"}) for i in range(4)]
    lines += [json.dumps({"id": "long-1", "text": "lengthy " * 35}),
              json.dumps({"id": "long-2", "text": " ".join(f"token{j}" for j in range(200))})]
    lines.insert(BAD_LINE - 1, '{"id": "broken", "text": "no closing quote}')
    path.write_text("\n".join(lines) + "\n")


def test_report_and_stats_show_examples_of_every_drop_reason(tmp_path):
    data = tmp_path / "in.jsonl"
    write_input(data)
    config = tmp_path / "c.yaml"
    config.write_text(f"""
name: why-dropped
input: {{format: jsonl, paths: ["{data}"]}}
output: {{path: "{tmp_path / 'out'}"}}
stages:
  - length: {{min_words: 3, max_words: 30}}
""")
    proc = cli("run", "--quiet", str(config))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    read, length = stats["stages"]

    (quarantined,) = read["examples"]["bad_json"]
    origin = json.loads(quarantined["meta"])
    assert (origin["path"], origin["line"]) == (str(data), BAD_LINE)
    assert set(length["examples"]) == {"too_few_words", "too_many_words"}
    assert [r["id"] for r in length["examples"]["too_few_words"]] == ["short-0", "short-1", "short-2"]
    long_rows = {r["id"]: r["text"] for r in length["examples"]["too_many_words"]}
    assert set(long_rows) == {"long-1", "long-2"}
    assert long_rows["long-1"] == "lengthy " * 35 and long_rows["long-2"].endswith(" chars)")

    page = (tmp_path / "out" / "report.html").read_text()
    details = page[page.index("Stage details"):]
    for reason, example in (("bad_json", str(data)), ("too_few_words", "short-2"), ("too_many_words", "long-2")):
        section = details[details.index(f"dropped: {reason}"):]
        assert example in re.split("<h[34]", section)[0], reason
    assert "(3 of 4 rows)" in details

    inspect = cli("inspect", str(tmp_path / "out"), "--rejects")
    assert inspect.returncode == 0, inspect.stderr
    assert "00-read: bad_json (1 row)" in inspect.stdout and f'\\"line\\": {BAD_LINE}' in inspect.stdout
    assert "01-length: too_few_words (4 rows)" in inspect.stdout and '"id": "short-0"' in inspect.stdout

    # Another output format: every pass resumes from its checkpoint, only the write pass runs again.
    again = cli("run", "--quiet", str(config), "--set", "output.formats=[parquet, jsonl]")
    assert again.returncode == 0, again.stderr
    resumed = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert resumed["stages"][1]["resumed"] is True
    assert [s["examples"] for s in resumed["stages"]] == [read["examples"], length["examples"]]
