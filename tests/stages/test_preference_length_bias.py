"""The preferences summary: how the judge's choice follows answer length."""

import json

from stages.preferences import length_bias


def _row(scores, lengths, reason=None):
    return {"scores": None, "meta": json.dumps({"all_scores": scores, "lengths": lengths}), "_drop_reason": reason}


def test_length_bias_counts_kept_pairs_and_correlates_over_all_answers(ray_session):
    rows = [
        _row([9, 2], [120, 30]),  # chosen longer
        _row([8, 3], [200, 50]),  # chosen longer
        _row([7, 1], [10, 90]),  # chosen shorter
        _row([5, 5], [40, 60], "tie"),  # dropped: not a pair, but its answers count for the correlation
        _row([None, 6], [10, 20], "judge_unparsed"),
    ]
    metrics = length_bias(ray_session.data.from_items(rows))
    assert metrics["pairs"] == 3
    assert metrics["chosen_longer_share"] == round(2 / 3, 4)
    assert metrics["mean_length_gap_words"] == round((90 + 150 - 80) / 3, 2)
    assert 0 < metrics["score_length_spearman"] < 1
    assert metrics["plots"][0]["kind"] == "hist" and sum(metrics["plots"][0]["y"]) == 3
