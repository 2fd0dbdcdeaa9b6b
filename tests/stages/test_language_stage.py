"""The language stage through the engine, on documents and on instruction records."""

import csv

import pytest

from pipeline.errors import UserError
from pipeline.records import DROP_REASON, stable_id


def doc(text: str) -> dict:
    return {"id": stable_id(text), "text": text, "url": None, "domain": None, "source": "test", "meta": "{}"}


def test_documents_keep_list_and_scores(run_stage, shared_data):
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        english = [doc(f"{t}. {d}") for _, t, d in list(csv.reader(f))[:40]]
    german = [doc("Die Bundesregierung hat am Mittwoch neue Regeln für den Ausbau der Windenergie an Land beschlossen.")]
    kept, dropped = run_stage("language", {"keep": ["en"], "min_score": 0.5}, english + german)
    assert len(kept) + len(dropped) == len(english) + len(german)
    assert all(r["lang"] == "en" and r["lang_score"] >= 0.5 for r in kept)
    assert len(kept) > 0.9 * len(english)
    german_row = next(r for r in dropped if r["id"] == german[0]["id"])
    assert german_row[DROP_REASON] == "lang_not_kept" and german_row["lang"] == "de"


def test_instruction_records_use_a_view_of_messages(run_stage):
    def instruction(user: str, assistant: str) -> dict:
        return {
            "id": stable_id(user),
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
            "source": "test",
            "generated_by": "human",
            "parent_id": None,
            "meta": "{}",
        }

    rows = [
        instruction("Explain why the sky is blue in two sentences.", "Sunlight scatters off air molecules."),
        instruction("Erkläre, warum der Himmel blau ist, in zwei Sätzen.", "Because of Rayleigh scattering."),
    ]
    kept, dropped = run_stage("language", {"keep": ["de"], "view": "instruction", "min_score": 0.3}, rows)
    assert [r["id"] for r in kept] == [rows[1]["id"]]
    assert kept[0]["lang"] == "de" and kept[0]["messages"] == rows[1]["messages"]
    assert dropped[0][DROP_REASON] == "lang_not_kept"


def test_a_keep_code_the_model_does_not_know_is_a_user_error(run_stage, tmp_path, capsys):
    """`keep: [english]` used to drop every row as lang_not_kept, as if the filter were working."""
    from filters.language import bundled_model_path
    from pipeline.cli import main

    unknown = r"'english', 'EN' not among the model's 176 language codes \(en, "
    with pytest.raises(UserError, match=unknown):
        run_stage("language", {"keep": ["english", "de", "EN"]}, [doc("Ein kurzer Satz.")])
    with pytest.raises(UserError, match=unknown):  # a model of the user's is read in prepare, not in the checks
        run_stage("language", {"keep": ["english", "de", "EN"], "model": str(bundled_model_path())}, [])
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "c.yaml").write_text(f"input: {{format: jsonl, paths: [{tmp_path / 'in.jsonl'}]}}\n"
                                     f"output: {tmp_path / 'out'}\nstages:\n  - language: {{keep: [en, english]}}\n")
    assert main(["validate", str(tmp_path / "c.yaml")]) == 2
    assert "c.yaml:4: stages[0].language.keep: 'english' not among" in capsys.readouterr().err
