"""The line model of the `auto` engine: its features, the edge-only cut, and the weights we ship.

The features are pinned by hand on small texts; the weights are checked against what the training
script fits from the shared data, and against the outcome they are for: on the shared extraction
set, most of the boilerplate resiliparse lets through is cut and little of the article.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from filters.boilerplate_lines import (
    FEATURES, WEIGHTS, LineModel, content_lines, default_model, feature_matrix, trim_boilerplate,
)

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "Die Luft in der Stadt ist im Winter schlechter als im Sommer, sagen die Forscher der Universität."


def column(features: np.ndarray, name: str) -> list:
    return features[:, FEATURES.index(name)].tolist()


def test_each_line_is_described_by_its_shape_and_its_neighbours():
    lines = ["Home | News", "Über 2024 Ärzte:", SENTENCE, "© Zeitung"]
    f = feature_matrix(lines)

    assert f.shape == (4, len(FEATURES))
    assert column(f, "log_chars") == pytest.approx(np.log1p([len(line) for line in lines]).tolist())
    assert column(f, "log_words") == pytest.approx(np.log1p([3, 3, 17, 2]).tolist())
    assert column(f, "ends_sentence") == [0, 1, 1, 0]  # ":" ends one
    assert column(f, "ends_colon_or_question") == [0, 1, 0, 0]
    assert column(f, "has_separator") == [1, 0, 0, 1]
    assert column(f, "digit_share") == pytest.approx([0, 4 / 16, 0, 0])
    assert column(f, "capital_share") == pytest.approx([2 / 11, 2 / 16, 7 / len(SENTENCE), 1 / 9])  # Ü and Ä count
    assert column(f, "log_short_run") == pytest.approx(np.log1p([2, 2, 0, 1]).tolist())  # the long line splits the runs
    assert column(f, "previous_ends_sentence") == [1, 0, 1, 1] and column(f, "next_ends_sentence") == [1, 1, 0, 1]
    assert column(f, "log_edge_distance") == pytest.approx(np.log1p([0, 1, 1, 0]).tolist())
    total = sum(map(len, lines))
    assert column(f, "log_previous_chars") == pytest.approx([0, np.log1p(11), np.log1p(16), np.log1p(len(SENTENCE))])
    assert column(f, "log_text_chars") == pytest.approx([np.log1p(total)] * 4)


def test_a_lower_case_longer_than_its_letter_is_still_counted_as_one_capital():
    # "İ".lower() is two code points: the vectorised count cannot line the two texts up
    assert column(feature_matrix(["İstanbul und Ankara", "x"]), "capital_share")[0] == pytest.approx(2 / 19)


class Always(LineModel):
    """Calls every line with `marker` in it boilerplate: pins the cutting rule apart from the weights."""

    def __init__(self, marker: str, lines: list[str]):
        self.verdicts = [marker in line for line in lines]

    def boilerplate(self, features):
        return np.array(self.verdicts)


def test_only_the_runs_at_the_two_edges_are_cut_and_paragraph_breaks_stay():
    text = "\n".join(["MENU Startseite", "", "MENU Politik", SENTENCE, "", "MENU Was die Forscher messen", SENTENCE,
                      "MENU Teilen", "MENU Impressum", ""])
    lines, _ = content_lines(text.split("\n"))

    assert trim_boilerplate(text, Always("MENU", lines)) == "\n".join([SENTENCE, "", "MENU Was die Forscher messen", SENTENCE])


def test_a_text_of_boilerplate_only_becomes_empty_and_so_falls_back():
    assert trim_boilerplate("MENU a\nMENU b", Always("MENU", ["MENU a", "MENU b"])) == ""
    assert trim_boilerplate("  \n \n") == ""


def test_the_shipped_model_cuts_navigation_and_keeps_the_article():
    article = "\n".join([SENTENCE] * 4)
    text = "\n".join(["Startseite", "Politik", "Umwelt", article, "Diesen Artikel teilen", "Facebook", "Twitter",
                      "© 2024 Umweltzeitung | Impressum | Datenschutz"])
    assert trim_boilerplate(text) == article


def test_weights_fitted_on_other_features_are_refused(tmp_path):
    weights = json.loads(WEIGHTS.read_text())
    weights["features"] = weights["features"][:-1]
    (tmp_path / "w.json").write_text(json.dumps(weights))
    with pytest.raises(ValueError, match="fitted on features"):
        LineModel.load(tmp_path / "w.json")


@pytest.fixture(scope="module")
def shared_pages(shared_data):
    from benchmarks.bench_extract import load_pages, quality
    from scripts.train_boilerplate_lines import fast_texts

    pages = load_pages()
    return pages, fast_texts(pages), quality


def test_on_the_shared_set_most_boilerplate_goes_and_little_of_the_article(shared_pages):
    pages, texts, quality = shared_pages
    before = quality(pages, texts)
    after = quality(pages, [trim_boilerplate(t) for t in texts])
    # resiliparse alone kept 20% of the `without` snippets; the cut leaves 11% (0.795 -> 0.890 kept out)
    assert after["boilerplate_out"] - before["boilerplate_out"] >= 0.08
    assert before["recall"] - after["recall"] <= 0.025  # 0.927 -> 0.906 of the `with` snippets
    assert after["f1"] >= before["f1"] + 0.02  # 0.869 -> 0.899


def test_the_shipped_weights_are_what_the_training_script_fits(shared_data, tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "weights.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/train_boilerplate_lines.py"), "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, "PIPELINE_SHARED_DATA": str(shared_data)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    fitted, shipped = json.loads(out.read_text()), json.loads(WEIGHTS.read_text())
    assert (fitted["strength"], fitted["threshold"]) == (shipped["strength"], shipped["threshold"])
    assert fitted["coef"] == pytest.approx(shipped["coef"], rel=1e-4, abs=1e-6)
    assert fitted["intercept"] == pytest.approx(shipped["intercept"], rel=1e-4)
    assert default_model().threshold == shipped["threshold"]
