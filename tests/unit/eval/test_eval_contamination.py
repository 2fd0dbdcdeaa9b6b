"""Contamination beside the scores: a benchmark whose items are in the training rows is found by the
decontamination index over the real benchmark copy and marked next to its score."""

from __future__ import annotations

import json

import pytest

from pipeline.evaluate import contamination
from pipeline.evaluate.table import LEAK_MARK, contamination_text


@pytest.mark.shared_data
def test_a_leaked_gsm8k_item_is_found_and_marked(shared_data):
    first = json.loads((shared_data / "benchmarks" / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    chats = [[{"role": "user", "content": "Solve this: " + first["question"]}, {"role": "assistant", "content": first["answer"]}],
             [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]]
    found = contamination.scan(["gsm8k"], contamination.training_texts(chats), str(shared_data / "benchmarks"))
    assert found["gsm8k"]["items"] == 1319 and found["gsm8k"]["items_found"] == 1 and found["gsm8k"]["leaked"] == 1
    assert contamination_text(found["gsm8k"]).startswith(f"{LEAK_MARK} 1 items in the training data")

    clean = contamination.scan(["gsm8k"], contamination.training_texts(chats[1:]), str(shared_data / "benchmarks"))
    assert clean["gsm8k"]["items_found"] == 0 and LEAK_MARK not in contamination_text(clean["gsm8k"])
