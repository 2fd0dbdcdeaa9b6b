"""The report's evaluation section: one chart of base against tuned per task, the table with the
difference and each benchmark's contamination (a leaked one marked), and the judge's sentence."""

from __future__ import annotations

from pipeline import report
from pipeline.evaluate.harness import Score
from pipeline.evaluate.table import LEAK_MARK, compare, markdown
from pipeline.evaluate.tasks import Task


def _result() -> dict:
    tasks = [Task("held_out", "pipeline_held_out", "exact_match,none", "split"),
             Task("gsm8k", "pipeline_gsm8k", "exact_match,strict-match", "local", benchmark="gsm8k")]
    scores = {"base": {"held_out": Score(0.1, 0.05, 40, "exact_match,none"), "gsm8k": Score(0.2, 0.04, 100, "exact_match,strict-match")},
              "tuned": {"held_out": Score(0.9, 0.05, 40, "exact_match,none"), "gsm8k": Score(0.3, 0.03, 100, "exact_match,strict-match")}}
    leaks = {"gsm8k": {"items": 1319, "items_found": 2, "leaked": 2, "source": "scan of the training rows"}}
    return {"models": {"base": "m", "tuned": "m + adapter a"}, "limit": None, "tasks": compare(tasks, scores, leaks),
            "judge": {"model": "j", "prompts": 40, "judged": 38, "failed": 2, "win_rate": 0.75, "length_controlled": 0.6,
                      "length_slope": 1.0, "mean_length_base": 120.0, "mean_length_tuned": 240.0}}


def test_the_section_compares_and_marks_the_leak():
    result = _result()
    gsm8k = result["tasks"][1]
    assert abs(gsm8k["difference"] - 0.1) < 1e-12 and abs(gsm8k["difference_stderr"] - 0.05) < 1e-12
    html = report.evaluation(result)
    assert html.startswith("<h2>Evaluation</h2>") and html.count("<svg") == 1
    assert html.count('stroke="#222" fill="none"/>') == 4  # an error bar on each task's base and tuned bar
    assert "0.900 &plusmn; 0.050" in html and "+0.100 &plusmn; 0.050" in html
    assert f"{LEAK_MARK} 2 items in the training data" in html
    assert "tuned win rate 75.0%, length-controlled 60.0% (38 judged)" in html
    table = markdown(result)
    assert "| gsm8k | exact_match,strict-match | 100 | 0.200 ± 0.040 | 0.300 ± 0.030 | +0.100 ± 0.050 | ⚠ 2 items" in table
    page = report.page("Evaluation", html)
    assert page.startswith("<!doctype html>") and "<h2>Evaluation</h2>" in page
