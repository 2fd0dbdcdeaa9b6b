"""A stage that needs a column only another stage adds (`reweight` grouping by `domain_label`) is
refused when the config loads, in one line naming the stage, the column and the stage that adds it,
instead of failing after the passes before it have run."""

from __future__ import annotations

import textwrap

import pytest

from pipeline.config import load_run
from pipeline.errors import UserError

HEAD = """
name: t
input: {format: jsonl, paths: [data.jsonl]}
output: out
stages:
"""


def write(tmp_path, stages: str):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(HEAD).lstrip() + textwrap.dedent(stages))
    return path


def error_of(path) -> str:
    with pytest.raises(UserError) as e:
        load_run(path)
    return str(e.value)


def test_reweight_needs_a_domain_stage_before_it(tmp_path):
    path = write(tmp_path, """\
      - length: {min_words: 2}
      - reweight: {temperature: 2}
    """)
    assert error_of(path) == (f"{path}:6: stages[1].reweight: needs column 'domain_label', which the domain stage adds: "
                              "put one before it")

    # A domain stage that is there but misconfigured: the user hears about its options, not about a missing stage.
    path = write(tmp_path, """\
      - domain: {min_score: 0.5}
      - reweight: {temperature: 2}
    """)
    assert error_of(path) == f"{path}:5: stages[0].domain: give at least one of rules, field or model"

    run = load_run(write(tmp_path, """\
      - domain: {field: source}
      - length: {min_words: 2}
      - reweight: {temperature: 2}
    """))
    assert [s.ctx.stage_id for s in run.stages] == ["01-domain", "02-length", "03-reweight"]


def test_the_stage_named_is_the_one_adding_the_column_grouped_by(tmp_path):
    path = write(tmp_path, """\
      - domain: {field: source}
      - reweight: {by: lang, temperature: 2}
    """)
    assert error_of(path) == f"{path}:6: stages[1].reweight: needs column 'lang', which the language stage adds: put one before it"


def test_a_column_no_stage_adds_is_left_to_the_data(tmp_path):
    """`source` comes from the reader: whether it is there is the input's business, not the config's."""
    run = load_run(write(tmp_path, "  - reweight: {by: source, temperature: 2}\n"))
    assert run.stages[0].needs() == ("source",)
