"""Responses, preference judging (rubric and both-order pairwise, ties, margins) and back-translation."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
from synthetic_fakes import FakeClient, prompt_text

from generators.client import SamplingParams
from generators.grounded import GroundedConfig, backtranslate, clean_instruction
from generators.preferences import Candidate, PreferenceConfig, PreferenceJudge, parse_rating, parse_winner, select_pair
from generators.respond import RespondConfig, prompt_messages, respond
from pipeline.config import build_stage
from pipeline.records import DROP_REASON

CONV = [{"role": "user", "content": "Name a prime number."}, {"role": "assistant", "content": "4"}]


@pytest.mark.parametrize(
    "text, score",
    [
        ("Good answer.\nRating: 8", 8),
        ("**Rating:** 7/10", 7),
        ("Criteria 1-10 considered... Rating: 9", 9),
        ("I'd give it 6 out of 10.", 6),
        ("Rating: 12", None),
        ("Score: 4/5", None),  # a 5-point verdict is not a 10-point rating
        ("no number here", None),
        ("Rating: 3\nOn reflection, Rating: 5", 5),
    ],
)
def test_parse_rating(text, score):
    assert parse_rating(text, 1, 10) == score


def test_parse_winner():
    assert parse_winner("A is more precise.\nWinner: A") == "A"
    assert parse_winner("Winner: **B**") == "B"
    assert parse_winner("Winner: tie") == "tie"
    assert parse_winner("both fine") is None


@pytest.mark.parametrize(
    "scores, margin, expected",
    [
        ([3, 8, 5], 1.0, (1, 0, None)),
        ([7, 7], 1.0, (None, None, "tie")),
        ([7, 7.5], 1.0, (None, None, "below_margin")),
        ([None, 6], 1.0, (None, None, "judge_unparsed")),
        ([9, None, 2], 1.0, (0, 2, None)),
    ],
)
def test_select_pair(scores, margin, expected):
    assert select_pair(scores, margin) == expected


def test_respond_continues_before_the_last_answer_with_several_samples():
    client = FakeClient(lambda r: "2 is prime.")
    out = respond(client, [CONV], RespondConfig(samples=3, system_prompt="Be brief."))
    assert [c.text for c in out[0].choices] == ["2 is prime."] * 3
    assert client.requests[0].messages == ({"role": "system", "content": "Be brief."}, CONV[0])
    assert prompt_messages(CONV) == (CONV[0],)


def _candidates(texts):
    return [Candidate(FakeClient(lambda r, t=t: t, model=f"m{i}"), SamplingParams(), f"m{i}") for i, t in enumerate(texts)]


def test_rubric_judging_picks_best_against_worst():
    ratings = {"Two.": "Rating: 9", "Seven is prime.": "Rating: 8", "Four.": "Rating: 1"}
    judge = FakeClient(lambda r: next(v for k, v in ratings.items() if f"[Answer]\n{k}" in prompt_text(r)))
    [res] = PreferenceJudge(_candidates(list(ratings)), judge, PreferenceConfig()).run([CONV])
    assert res.reason is None and res.responses[res.chosen] == "Two." and res.responses[res.rejected] == "Four."
    assert res.scores == [9, 8, 1]


def test_rubric_ties_are_dropped():
    judge = FakeClient(lambda r: "Rating: 6")
    [res] = PreferenceJudge(_candidates(["Two.", "Three."]), judge, PreferenceConfig()).run([CONV])
    assert res.reason == "tie" and res.chosen is None


def test_pairwise_position_bias_cancels_to_a_tie():
    """A judge that always prefers the first answer shown gives a split verdict: a tie, dropped."""
    judge = FakeClient(lambda r: "Winner: A")
    [res] = PreferenceJudge(_candidates(["Two.", "Four."]), judge, PreferenceConfig(mode="pairwise")).run([CONV])
    assert res.scores == [0.5, 0.5] and res.reason == "tie"
    assert len(judge.requests) == 2


def test_pairwise_consistent_preference_wins_in_both_orders():
    def judge_fn(r):
        text = prompt_text(r)
        return "Winner: A" if text.index("Two.") < text.index("Four.") else "Winner: B"

    judge = FakeClient(judge_fn)
    [res] = PreferenceJudge(_candidates(["Four.", "Two."]), judge, PreferenceConfig(mode="pairwise")).run([CONV])
    assert res.scores == [0.0, 1.0] and res.responses[res.chosen] == "Two."


def test_failed_and_cut_responses():
    cands = _candidates(["Two."]) + [Candidate(FakeClient(lambda r: RuntimeError("HTTP 500")), SamplingParams(), "bad")]
    [res] = PreferenceJudge(cands, FakeClient(lambda r: "Rating: 5"), PreferenceConfig()).run([CONV])
    assert res.reason == "llm_error" and res.meta["errors"] == ["bad: HTTP 500"]
    cands = _candidates(["Two."]) + [Candidate(FakeClient(lambda r: ("Thr", "length")), SamplingParams(), "cut")]
    [res] = PreferenceJudge(cands, FakeClient(lambda r: "Rating: 5"), PreferenceConfig()).run([CONV])
    assert res.reason == "too_few_responses" and res.meta["unusable_responses"] == 1


def _failing_judge(fails):
    """Rates every answer 9 (or 2 if it has 'Four') and fails the verdicts of requests where `fails(text)` holds."""
    return FakeClient(lambda r: RuntimeError("HTTP 503: overloaded") if fails(prompt_text(r)) else
                      "Rating: 2" if "Four" in prompt_text(r) else "Rating: 9")  # fmt: skip


def test_rubric_judge_failures_drop_the_prompt_as_llm_error_with_the_error():
    """One failed verdict of three: the other two could make a pair, but not the one the judge would have
    chosen; the row is an `llm_error`, not `judge_unparsed`, and the prompt judged in full is kept."""
    other = [{"role": "user", "content": "Name an even number."}]
    judge = _failing_judge(lambda text: "prime" in text and "[Answer]\nSeven." in text)
    failed, kept = PreferenceJudge(_candidates(["Two.", "Seven.", "Four."]), judge, PreferenceConfig()).run([CONV, other])
    assert failed.reason == "llm_error" and failed.chosen is None
    assert failed.meta["errors"] == ["judge: HTTP 503: overloaded"] and failed.scores == [9, None, 2]
    assert kept.reason is None and kept.responses[kept.chosen] == "Two." and kept.responses[kept.rejected] == "Four."


def test_pairwise_judge_failures_drop_the_prompt_as_llm_error_with_the_error():
    judge = FakeClient(lambda r: RuntimeError("timeout after 120 s") if prompt_text(r).index("Four.") < prompt_text(r).index("Two.")
                       else "Winner: A")  # fmt: skip
    [res] = PreferenceJudge(_candidates(["Two.", "Four."]), judge, PreferenceConfig(mode="pairwise")).run([CONV])
    assert res.reason == "llm_error" and res.meta["errors"] == ["judge: timeout after 120 s"]
    assert res.meta["verdicts"] == {"0>1": "A", "1>0": None} and len(judge.requests) == 2


def test_preferences_stage_rejects_a_failed_judgement_as_llm_error_with_the_errors_in_meta():
    """What the console and rejects/ show: the row's reason and its meta, as the stage writes them."""
    stage = build_stage("preferences", {}, index=4, output_dir=Path("/nonexistent"), llms={"teacher": {"backend": "transformers", "model": "m"}})
    stage.judge = PreferenceJudge(_candidates(["Two.", "Four."]), _failing_judge(lambda text: "Two." in text), PreferenceConfig())
    stage.judge_model = "judge-model"
    rows = [{"id": "q1", "messages": CONV, "source": "seed", "meta": '{"origin": "seeds"}'}]
    [row] = stage.process_batch(pa.Table.from_pylist(rows)).to_pylist()
    assert row[DROP_REASON] == "llm_error" and row["chosen"] is None
    meta = json.loads(row["meta"])
    assert meta["errors"] == ["judge: HTTP 503: overloaded"] and meta["origin"] == "seeds" and meta["all_scores"] == [None, 2]


DOC = "The Nile is the longest river in Africa. " * 10


def test_backtranslation_keeps_well_judged_pairs_and_drops_the_rest():
    writer = FakeClient(lambda r: "Request: Tell me about the Nile.\n\nExtra commentary.")
    scores = iter(["Score: 5", "Score: 2", "no idea"])
    judge = FakeClient(lambda r: next(scores))
    pairs = backtranslate(writer, judge, [DOC, DOC, DOC, "too short"], GroundedConfig(min_words=20))
    assert [p.reason for p in pairs] == [None, "low_score", "judge_unparsed", "document_too_short"]
    assert pairs[0].instruction == "Tell me about the Nile." and pairs[0].score == 5


def test_backtranslation_errors_are_recorded():
    pairs = backtranslate(FakeClient(lambda r: RuntimeError("timeout")), FakeClient(lambda r: "Score: 5"), [DOC], GroundedConfig(min_words=5))
    assert pairs[0].reason == "llm_error" and pairs[0].meta["error"] == "timeout"
    assert clean_instruction('"[Question]: Why is the sky blue?"') == "Why is the sky blue?"
