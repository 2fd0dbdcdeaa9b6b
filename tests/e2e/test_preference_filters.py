"""Filters judge a preference pair by its prompt and chosen answer, never by the rejected one."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.cli import cli

PROMPT = "How should I store fresh basil so that it stays green for more than a couple of days?"
CHOSEN = ("Treat basil like cut flowers: trim the stems, stand them in a glass of water at room temperature and "
          "loosely cover the leaves with a plastic bag. Change the water every day or two and keep the glass out "
          "of direct sunlight. Avoid the refrigerator, because the cold turns the leaves black within a day.")
REJECTED_EN = "Just put it in the fridge, it will be fine for weeks and you do not need to do anything else."
GERMAN = ("Basilikum sollte man nicht im Kühlschrank aufbewahren, weil die Blätter dort schnell schwarz werden. "
          "Am besten stellt man die Stiele in ein Glas mit Wasser und wechselt das Wasser jeden Tag.")

CONFIG = """
name: pairs
input: {{format: jsonl, paths: ["{dir}/pairs.jsonl"], kind: preference}}
output: {{path: "{dir}/out"}}
stages:
  - language: {{keep: [en], min_score: 0.5}}
  - dedup: {{method: exact}}
"""


@pytest.mark.slow
def test_language_and_dedup_judge_a_pair_by_its_prompt_and_chosen_answer(tmp_path):
    """Pairs used to be read as empty text: a language filter dropped every pair, and dedup saw them all as one."""
    pairs = [
        {"id": "plain", "prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED_EN},
        {"id": "german_rejected", "prompt": PROMPT, "chosen": CHOSEN + " Fresh basil also freezes well.", "rejected": GERMAN},
        {"id": "german_chosen", "prompt": PROMPT, "chosen": GERMAN, "rejected": REJECTED_EN},
        {"id": "same_but_rejected", "prompt": PROMPT, "chosen": CHOSEN, "rejected": "Dry it in the oven."},
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(dir=tmp_path))

    proc = cli("run", "--quiet", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]

    kept = {r["id"] for p in (tmp_path / "out" / "data").glob("*.parquet") for r in pq.read_table(p, columns=["id"]).to_pylist()}
    assert kept == {"plain", "german_rejected"}
    stages = {s["name"]: s for s in json.loads((tmp_path / "out" / "stats.json").read_text())["stages"]}
    assert stages["language"]["dropped"] == 1 and stages["dedup"]["dropped"] == 1
