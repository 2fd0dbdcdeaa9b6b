"""Evol-Instruct's elimination rules, lineage and pool behaviour, pinned down with a scripted model."""

import pytest
from synthetic_fakes import FakeClient, prompt_text

from generators import prompts
from generators.evol_instruct import (
    OPERATIONS,
    EvolConfig,
    EvolInstruct,
    choose_operation,
    copies_prompt_words,
    elimination_counts,
    is_sorry,
    only_punctuation_and_stop_words,
    parse_equality,
)

GOOD_ANSWER = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside chloroplasts."


def scripted(evolve, equal="Different", answer=GOOD_ANSWER):
    """Routes each request by the prompt it carries: evolution, equality judgement, or answer."""

    def script(request):
        text = prompt_text(request)
        if text.startswith(prompts.EVOL_EQUALITY.text[:30]):
            return equal(text) if callable(equal) else equal
        if prompts.EVOL_GIVEN in text:
            instruction = text.split(prompts.EVOL_GIVEN + "\n", 1)[1].split("\n\n" + prompts.EVOL_NEW)[0]
            return evolve(instruction)
        return answer(text) if callable(answer) else answer

    return script


@pytest.mark.parametrize(
    "text, copied",
    [
        ("Rewrite the given prompt so it is harder", True),
        ("#New Instruction#: Explain photosynthesis", True),
        ("#Rewritten Prompt# Explain photosynthesis", True),
        ("Explain photosynthesis, citing two experiments", False),
    ],
)
def test_copied_prompt_words(text, copied):
    assert copies_prompt_words(text) == copied


def test_short_sorry_response_rule():
    assert is_sorry("I'm sorry, but I cannot help with that.")
    assert not is_sorry("Sorry " + "word " * 80)  # long answers that apologise once are fine
    assert not is_sorry(GOOD_ANSWER)


def test_punctuation_and_stop_words_rule():
    assert only_punctuation_and_stop_words("It is what it is...")
    assert only_punctuation_and_stop_words("?!")
    assert not only_punctuation_and_stop_words("It is Paris.")


@pytest.mark.parametrize("text, equal", [("Equal", True), ("equal.", True), ("Different", False), ("Not Equal", False), ("Hmm", None)])
def test_parse_equality(text, equal):
    assert parse_equality(text) is equal


def test_operations_are_seeded_per_instruction_and_cover_all():
    draws = [choose_operation(7, f"id{i}", 1, OPERATIONS) for i in range(300)]
    assert set(draws) == set(OPERATIONS)
    assert draws == [choose_operation(7, f"id{i}", 1, OPERATIONS) for i in range(300)]
    assert draws != [choose_operation(8, f"id{i}", 1, OPERATIONS) for i in range(300)]


def test_lineage_over_rounds():
    client = FakeClient(scripted(lambda inst: inst + " Then justify each step."))
    attempts = EvolInstruct(client, EvolConfig(rounds=3)).run([("a", "Explain photosynthesis."), ("b", "Name three rivers.")])
    assert elimination_counts(attempts) == {"evolved": 6}
    chain = [e for e in attempts if e.root_id == "a"]
    assert [e.round for e in chain] == [1, 2, 3]
    assert [e.parent_id for e in chain] == ["a", "a.e1", "a.e2"]
    assert chain[-1].instruction == "Explain photosynthesis." + " Then justify each step." * 3
    assert all(e.operation in OPERATIONS and e.meta["prompt_version"].startswith("evol_instruct.") for e in chain)
    assert chain[0].response == GOOD_ANSWER


def test_a_failed_evolution_goes_back_to_the_pool():
    # Round 1 produces an instruction the judge finds equal to its parent; round 2 evolves the parent again.
    calls = []

    def evolve(inst):
        calls.append(inst)
        return inst + (" (same)" if len(calls) == 1 else " Use at most 50 words.")

    equal = lambda text: "Equal" if "(same)" in text else "Different"  # noqa: E731
    attempts = EvolInstruct(FakeClient(scripted(evolve, equal)), EvolConfig(rounds=2)).run([("a", "Explain tides.")])
    assert [(e.round, e.reason) for e in attempts] == [(1, "no_information_gain"), (2, None)]
    assert calls == ["Explain tides.", "Explain tides."]
    assert attempts[1].parent_id == "a"


@pytest.mark.parametrize(
    "evolve, answer, reason",
    [
        (lambda i: "#New Instruction#\n" + i + " In French.", GOOD_ANSWER, "copied_prompt_words"),
        (lambda i: i + " With sources.", "Sorry, I can't do that.", "sorry_response"),
        (lambda i: i + " With sources.", "It is what it is.", "stop_words_response"),
        (lambda i: (i + " With", "length"), GOOD_ANSWER, "truncated"),
        (lambda i: "   ", GOOD_ANSWER, "empty"),
        (lambda i: i + " With sources.", (GOOD_ANSWER, "length"), "response_truncated"),
        (lambda i: RuntimeError("timeout after 120 s"), GOOD_ANSWER, "llm_error"),
        (lambda i: i + " With sources.", RuntimeError("HTTP 503"), "llm_error"),
    ],
)
def test_each_elimination_rule(evolve, answer, reason):
    attempts = EvolInstruct(FakeClient(scripted(evolve, answer=answer)), EvolConfig(rounds=1)).run([("a", "Explain tides.")])
    assert [e.reason for e in attempts] == [reason]
    if reason == "llm_error":
        assert attempts[0].meta["error"] in ("timeout after 120 s", "HTTP 503")
