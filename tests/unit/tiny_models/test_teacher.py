"""The tiny model's teaching data must read back through the generators' own parsers, or it teaches the wrong shape."""

from __future__ import annotations

import pytest

from generators.evol_instruct import copies_prompt_words, parse_equality
from generators.self_instruct import load_seed_tasks, one_line, parse_instances, parse_is_classification, parse_proposals
from pipeline.train.data import IGNORE
from tiny_models.teacher import encode, teaching_examples


@pytest.fixture(scope="module")
def seeds(shared_data):
    return load_seed_tasks(shared_data / "seeds/self_instruct/seed_tasks.jsonl")


@pytest.fixture(scope="module")
def examples(seeds):
    return teaching_examples(seeds, copies=1, seed=3)


def test_every_kind_is_taught_and_the_draws_are_seeded(examples, seeds):
    assert {e.kind for e in examples} == {"propose", "classify", "instances", "evolve", "equality", "respond"}
    again = teaching_examples(seeds, copies=1, seed=3)
    assert [(e.prompt, e.completion, e.messages) for e in again] == [(e.prompt, e.completion, e.messages) for e in examples]
    assert [e.prompt for e in teaching_examples(seeds, copies=1, seed=4) if e.kind == "propose"] != [
        e.prompt for e in examples if e.kind == "propose"
    ]


def test_proposal_completions_continue_the_list_with_unshown_seeds(examples, seeds):
    instructions = {one_line(s.instruction) for s in seeds}
    for e in (e for e in examples if e.kind == "propose"):
        items = parse_proposals(e.completion)
        assert 1 <= len(items) <= 4 and e.prompt.endswith("\n9.") and e.completion.startswith(" ")
        for item in items:
            assert item in instructions or item[0].lower() + item[1:] in instructions
            assert f". {item}\n" not in e.prompt


def test_answers_parse_as_the_algorithms_read_them(examples, seeds):
    by_kind = {}
    for e in examples:
        by_kind.setdefault(e.kind, []).append(e)
    assert all(parse_is_classification(e.completion) is not None for e in by_kind["classify"])
    for e in by_kind["instances"]:
        output_first = "For each classification task" in e.prompt
        parsed = parse_instances(e.completion, output_first)
        assert parsed and all(inst["output"] for inst in parsed)
    for e in by_kind["evolve"]:  # only a seed that itself says "given prompt" passes the words on
        parent = e.messages[0]["content"].split("#Original Instruction#\n")[1]
        assert not copies_prompt_words(e.messages[-1]["content"]) or copies_prompt_words(parent)
    verdicts = [parse_equality(e.messages[-1]["content"]) for e in by_kind["equality"]]
    assert set(verdicts) == {True, False}
    assert all(e.messages[-1]["content"].strip() for e in by_kind["respond"])


def test_raw_prompts_are_learned_whole_and_chats_only_in_the_assistant_turn(examples, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    raw = next(e for e in examples if e.kind == "propose")
    chat = next(e for e in examples if e.kind == "equality")
    enc_raw, enc_chat = encode([raw, chat], tokenizer, 2048)
    prompt = tokenizer.encode(raw.prompt, add_special_tokens=False)
    assert enc_raw.input_ids[: len(prompt)] == prompt  # tokenized as a server tokenizes the prompt alone
    assert enc_raw.targets == enc_raw.input_ids[1:] + [IGNORE] and enc_raw.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(enc_raw.input_ids[len(prompt) : -1]) == raw.completion
    chat_learned = tokenizer.decode([t for t in enc_chat.targets if t != IGNORE])
    assert chat_learned == chat.messages[-1]["content"] + "<|im_end|>"
