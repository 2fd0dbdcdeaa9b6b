"""Self-Instruct's rules, each pinned down with a scripted model."""

import random
import re

import pytest
from synthetic_fakes import FakeClient, prompt_text

from generators import prompts
from generators.client import EndpointFailing
from generators.self_instruct import (
    SeedTask,
    SelfInstruct,
    SelfInstructConfig,
    load_seed_tasks,
    parse_instances,
    parse_proposals,
    proposal_drop_reason,
)

WORDS = (
    "river galaxy recipe tax poem violin protein orbit ledger sonnet glacier budget verb enzyme "
    "castle tariff lemon quantum harbor novel algebra melody forest vaccine marble rhythm comet "
    "bridge canyon pepper summit theorem garden"
).split()


def seeds(n=10):
    return [
        SeedTask(f"Seed task number {i}: explain {WORDS[i]} and {WORDS[-i - 1]} to a child", [{"input": "", "output": "ok"}], i % 2 == 0)
        for i in range(n)
    ]


def novel_instruction(rng: random.Random) -> str:
    return "Write about " + " ".join(rng.sample(WORDS, 8))


def scripted(proposals, classification="No", instances="Example 1\nInput: <none>\nOutput: an answer"):
    """Answers each kind of prompt the algorithm sends; `proposals(request)` writes the list."""

    def script(request):
        text = prompt_text(request)
        if text.startswith(prompts.IS_CLASSIFICATION.text[:40]):
            return classification(text) if callable(classification) else classification
        if text.startswith(prompts.INSTANCES_INPUT_FIRST.text[:40]) or text.startswith(prompts.INSTANCES_OUTPUT_FIRST.text[:40]):
            return instances(text) if callable(instances) else instances
        return proposals(request)

    return script


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Add two numbers", "too_short"),
        ("Add these two numbers together", None),
        ("word " * 151, "too_long"),
        ("Describe the image in one sentence", "unsuitable_for_text_model"),
        ("Draw a cat using characters", "unsuitable_for_text_model"),
        ("Plot the sales data per month", "unsuitable_for_text_model"),
        ("Go to the website and copy the title", "unsuitable_for_text_model"),
        ("Compose background music for a film", "unsuitable_for_text_model"),
        ("Describe the imagery of this poem", None),  # a word boundary, not a substring
        ("Write a program that sorts a list", "write_a_program"),
        ('"Quote" this sentence for me please', "starts_with_punctuation"),
        ("Écris une phrase sur la mer", "starts_non_ascii"),
    ],
)
def test_cheap_filters(text, reason):
    assert proposal_drop_reason(text) == reason


def test_parse_proposals_continues_a_numbered_list():
    text = " List three   fruits that are red\n10. Summarise the news\n11.Not split here\n12. translate to French"
    assert parse_proposals(text) == ["List three fruits that are red", "Summarise the news\n11.Not split here".replace("\n", " "), "Translate to French"]


def test_each_drop_reason_is_counted_and_only_novel_proposals_join_the_pool():
    seed = seeds()
    items = [
        seed[0].instruction.replace("child", "kid"),  # ROUGE-L 0.93 against a seed
        "Too short here",
        "Show the map of Europe with capitals",
        "Write about river galaxy recipe tax poem violin protein orbit",
        "write about river galaxy recipe tax poem violin protein orbit!",  # near-copy of the one before
        "Write about ledger sonnet glacier budget verb enzyme castle tariff",
    ]
    client = FakeClient(scripted(lambda r: " " + "\n".join(f"{9 + i}. {t}" if i else t for i, t in enumerate(items))))
    run = SelfInstruct(client, seed, SelfInstructConfig(target=2, requests_per_round=1, seed=1)).run()
    assert [p.instruction for p in run.pooled] == [items[3], items[5]]
    assert {p.instruction: p.reason for p in run.dropped} == {
        items[0]: "rouge_similar", "Too short here": "too_short",
        items[2]: "unsuitable_for_text_model", "Write about river galaxy recipe tax poem violin protein orbit!": "rouge_similar",
    }  # fmt: skip
    assert run.drops == {"rouge_similar": 2, "too_short": 1, "unsuitable_for_text_model": 1}
    similar = next(p for p in run.dropped if p.instruction == items[0])
    assert similar.meta["most_similar"] == seed[0].instruction and similar.meta["rouge_l"] > 0.7


def test_a_generation_cut_by_the_length_limit_is_dropped_whole():
    client = FakeClient(scripted(lambda r: (" Write about river galaxy recipe tax\n10. Write about ledger sonnet", "length")))
    run = SelfInstruct(client, seeds(), SelfInstructConfig(target=1, requests_per_round=1, max_stale_rounds=2)).run()
    assert run.pooled == [] and run.drops == {"truncated": 4} and run.stopped_early


def test_failed_requests_are_recorded_not_lost():
    sent = iter(range(1000))  # every other request fails: each round is answered in part
    client = FakeClient(scripted(lambda r: RuntimeError("HTTP 500 after 3 retries") if next(sent) % 2 else
                                 " Write about river galaxy recipe tax poem violin protein orbit"))
    run = SelfInstruct(client, seeds(), SelfInstructConfig(target=5, requests_per_round=2, max_stale_rounds=2)).run()
    assert run.drops["llm_error"] == 3 and run.stopped_early
    assert all(p.meta["error"] == "HTTP 500 after 3 retries" for p in run.dropped if p.reason == "llm_error")


def test_rounds_that_no_request_answered_stop_the_run_as_a_failing_endpoint():
    """A server that died mid-run left every later round unanswered: the loop ended as if the task space
    were exhausted, before the client's failure window had seen enough requests to judge."""
    sent = iter(range(1000))
    client = FakeClient(scripted(lambda r: " Write about " + " ".join(random.Random(next(sent)).sample(WORDS, 8))
                                 if len(client.requests) <= 6 else RuntimeError("Connection refused")))
    with pytest.raises(EndpointFailing, match=r"none of the last 6 requests to .* \(3 rounds\) was answered; "
                                              r"the first error: Connection refused"):
        SelfInstruct(client, seeds(), SelfInstructConfig(target=50, requests_per_round=2, max_stale_rounds=3)).run()


def test_pool_grows_round_by_round_shows_pool_tasks_and_stops_at_target():
    rng = random.Random(0)
    client = FakeClient(scripted(lambda r: " " + "\n".join(f"{9 + i}. {novel_instruction(rng)}" if i else novel_instruction(rng) for i in range(3))))
    sizes = []
    si = SelfInstruct(client, seeds(), SelfInstructConfig(target=20, requests_per_round=2, seed=3))
    run = si.run(on_round=lambda r, n: sizes.append(n))
    assert len(si.pool) == 20 and not run.stopped_early
    assert sizes == sorted(sizes) and sizes[-1] == 20 and len(sizes) > 1
    propose = [r.prompt for r in client.requests if r.prompt.startswith(prompts.SELF_INSTRUCT_PROPOSE.text[:40])]
    first, later = propose[0], propose[-1]
    assert first.rstrip().endswith("9.") and first.count("Seed task number") == 8
    assert later.count("Seed task number") == 6 and later.count("Write about") == 2
    # Proposals made after the target was reached are never counted or pooled.
    assert len(run.pooled) == 20


def test_stops_when_rounds_stop_producing_novel_tasks():
    client = FakeClient(scripted(lambda r: " Write about river galaxy recipe tax poem violin protein orbit"))
    run = SelfInstruct(client, seeds(), SelfInstructConfig(target=10, requests_per_round=2, max_stale_rounds=3)).run()
    assert len(run.pooled) == 1 and run.stopped_early and run.rounds == 4
    assert run.drops == {"rouge_similar": 7}


def test_classification_decides_output_first_instances():
    def classify(text):
        return "Yes" if "sentiment" in text.rsplit("Task:", 1)[1] else "No"

    def instances(text):
        if text.startswith(prompts.INSTANCES_OUTPUT_FIRST.text[:40]):
            return "Label: positive\nInput: I love this film.\nLabel: negative\nInput: Dull and long."
        return "Example 1\nInput: <none>\nOutput: Paris is the capital of France."

    items = ["Classify the sentiment of the movie review", "Write about river galaxy recipe tax poem"]
    client = FakeClient(scripted(lambda r: " " + items[0] + "\n10. " + items[1], classify, instances))
    run = SelfInstruct(client, seeds(), SelfInstructConfig(target=2, requests_per_round=1, instances_per_task=5)).run()
    by_text = {p.instruction: p for p in run.pooled}
    clf, gen = by_text[items[0]], by_text[items[1]]
    assert clf.is_classification and clf.instances == [
        {"input": "I love this film.", "output": "positive"},
        {"input": "Dull and long.", "output": "negative"},
    ]
    assert clf.meta["prompt_version_instances"] == prompts.INSTANCES_OUTPUT_FIRST.id
    assert not gen.is_classification and gen.instances == [{"input": "", "output": "Paris is the capital of France."}]
    assert gen.meta["prompt_version_instances"] == prompts.INSTANCES_INPUT_FIRST.id


def test_tasks_without_a_valid_instance_are_marked():
    client = FakeClient(scripted(lambda r: " Write about river galaxy recipe tax poem", instances="Example 1\nInput: same\nOutput: same"))
    run = SelfInstruct(client, seeds(), SelfInstructConfig(target=1, requests_per_round=1)).run()
    assert [p.reason for p in run.pooled] == ["no_valid_instance"]


def test_parse_instances_input_first_with_several_examples():
    text = "Example 1\nInput: 2+2\nOutput: 4\nExample 2\nInput: <none>\nOutput: multi\nline\nTask: next task"
    assert parse_instances(text, output_first=False) == [{"input": "2+2", "output": "4"}, {"input": "", "output": "multi\nline"}]


def test_loads_real_seed_tasks(shared_data):
    tasks = load_seed_tasks(shared_data / "seeds/self_instruct/seed_tasks.jsonl")
    assert len(tasks) == 175 and sum(bool(t.is_classification) for t in tasks) > 0
    assert all(t.instances for t in tasks)
    assert re.match(r"seed_task_\d+", tasks[0].id)
