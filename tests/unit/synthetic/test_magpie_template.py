"""Magpie's rules with local tokenizers carrying the chat templates of five model families, and a scripted model.

The templates are those the families ship (trimmed of tool-calling branches), on a tokenizer
trained here, so the pre-query cut is checked on the real Jinja a model would bring: the text
before the sentinel, the sentinel and the text after it give back the whole rendering, the stop
is the family's end-of-turn, and a BOS the tokenizer adds itself is not sent twice.
"""

from __future__ import annotations

import pytest

from generators.magpie import SENTINEL, Magpie, MagpieConfig, TemplateUnsplittable, pre_query, render
from tests.unit.synthetic.synthetic_fakes import FakeClient

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# family: (template, bos, eos, other special tokens, whether the tokenizer adds BOS itself)
FAMILIES = {
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|end_of_text|>", ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], True),
    "qwen": (QWEN, None, "<|endoftext|>", ["<|im_start|>", "<|im_end|>"], False),
    "mistral": (MISTRAL, "<s>", "</s>", [], True),
    "gemma": (GEMMA, "<bos>", "<eos>", ["<start_of_turn>", "<end_of_turn>"], True),
    "phi3": (PHI3, "<s>", "<|endoftext|>", ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], False),
}

# What each family's first user turn starts after, with no system prompt, and what ends it.
EXPECTED = {
    "llama3": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    "qwen": ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n", "<|im_end|>"),
    "mistral": ("[INST] ", "[/INST]"),
    "gemma": ("<start_of_turn>user\n", "<end_of_turn>"),
    "phi3": ("<|user|>\n", "<|end|>"),
}
SYSTEM = "You are a patient tutor."


@pytest.fixture(scope="module")
def base_tokenizer():
    from tiny_models.llama import build_tiny_tokenizer

    return build_tiny_tokenizer(["How do I sort a list in Python?", "Explain photosynthesis to a child."] * 20, vocab_size=400)


def family_tokenizer(base, family: str):
    """The tiny tokenizer given a family's special tokens, BOS behaviour and chat template."""
    import copy

    from tokenizers import processors

    template, bos, eos, specials, adds_bos = FAMILIES[family]
    tok = copy.deepcopy(base)
    tok.add_special_tokens({"eos_token": eos, **({"bos_token": bos} if bos else {}), "additional_special_tokens": specials})
    if not bos:
        tok.bos_token = None
    if adds_bos:
        tok._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.convert_tokens_to_ids(bos))]
        )
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("family", list(FAMILIES))
def test_pre_query_prefix_round_trips_and_stops_at_the_familys_end_of_turn(base_tokenizer, family):
    tok = family_tokenizer(base_tokenizer, family)
    template, bos, *_, adds_bos = FAMILIES[family]
    query = pre_query(tok, [])
    expected_prefix, expected_stop = EXPECTED[family]
    assert query.stop == expected_stop
    # A special end of turn is also asked for by id: a server strips it from the text a stop string sees.
    special = expected_stop in tok.all_special_tokens
    assert query.stop_token_ids == ((tok.convert_tokens_to_ids(expected_stop),) if special else ())
    assert special == (family != "mistral")  # Mistral's [/INST] is plain text here
    rendered = render(tok, [{"role": "user", "content": SENTINEL}])
    sent_bos = "" if adds_bos or not bos or not rendered.startswith(bos) else bos
    assert query.prefix == sent_bos + expected_prefix
    # What the server sees (the tokenizer's BOS, then the prefix) + the user message + the rest
    # gives back the template's own rendering, with one BOS.
    before, after = rendered.split(SENTINEL)
    seen = tok.decode(tok(query.prefix)["input_ids"], skip_special_tokens=False)
    assert seen.replace(" ", "") == before.replace(" ", "")  # decoding may space tokens apart
    assert seen.count(bos or "\x00") == (1 if bos and rendered.startswith(bos) else 0)
    assert query.prefix.removeprefix(bos or "") + SENTINEL + after == rendered.removeprefix(bos or "")
    assert after.lstrip().startswith(query.stop)


@pytest.mark.parametrize("family", ["llama3", "qwen", "phi3"])
def test_system_prompt_goes_before_the_pre_query_point(base_tokenizer, family):
    tok = family_tokenizer(base_tokenizer, family)
    query = pre_query(tok, [{"role": "system", "content": SYSTEM}])
    assert SYSTEM in query.prefix and query.prefix.endswith(EXPECTED[family][0].rsplit("<|im_end|>\n", 1)[-1])
    assert "You are Qwen" not in query.prefix  # the given system prompt replaces Qwen's default


@pytest.mark.parametrize("family", ["mistral", "gemma"])
def test_a_template_that_refuses_a_system_turn_cannot_be_split(base_tokenizer, family):
    tok = family_tokenizer(base_tokenizer, family)
    with pytest.raises(TemplateUnsplittable, match="refuses"):
        pre_query(tok, [{"role": "system", "content": SYSTEM}])


def test_a_template_that_rewrites_the_user_message_cannot_be_split(base_tokenizer):
    tok = family_tokenizer(base_tokenizer, "qwen")
    tok.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | upper }}<|im_end|>\n{% endfor %}"
    with pytest.raises(TemplateUnsplittable, match="verbatim"):
        pre_query(tok, [])
    tok.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }} ({{ m.content | length }})\n{{ m.content }}<|im_end|>\n{% endfor %}"
    with pytest.raises(TemplateUnsplittable, match="depends on the message"):
        pre_query(tok, [])


@pytest.mark.parametrize("family", ["llama3", "mistral", "gemma"])
def test_turns_alternate_each_user_turn_sampled_after_the_conversation_so_far(base_tokenizer, family):
    tok = family_tokenizer(base_tokenizer, family)
    questions = iter(f"question {i}" for i in range(100))

    def script(request):
        if request.prompt is not None:
            return next(questions)
        return f"answer to {request.messages[-1]['content']}"

    client = FakeClient(script)
    [conv] = Magpie(tok, client, MagpieConfig(count=1, turns=3, seed=1)).run([0])
    assert conv.reason is None and conv.turns == 3
    assert [m["role"] for m in conv.messages] == ["user", "assistant"] * 3
    assert [m["content"] for m in conv.messages] == [
        "question 0", "answer to question 0", "question 1", "answer to question 1", "question 2", "answer to question 2"]  # fmt: skip
    queries = [r for r in client.requests if r.prompt is not None]
    assert len(queries) == 3
    for k, q in enumerate(queries):  # turn k's prefix is the conversation of k exchanges, cut before a new user turn
        assert q.prompt == pre_query(tok, conv.messages[: 2 * k]).prefix
        assert q.params.stop == (EXPECTED[family][1],)
        assert q.params.stop_token_ids == pre_query(tok, conv.messages[: 2 * k]).stop_token_ids
    assert "answer to question 1" in queries[2].prompt and "question 2" not in queries[2].prompt
    chats = [r for r in client.requests if r.messages is not None]
    assert [len(c.messages) for c in chats] == [1, 3, 5]


def test_system_prompt_variants_and_rejects_with_reasons(base_tokenizer):
    tok = family_tokenizer(base_tokenizer, "gemma")  # refuses system turns

    def script(request):
        if request.prompt is not None:
            return {0: "   ", 1: ("cut off", "length"), 2: RuntimeError("server said 500")}.get(len(client.requests) - 1, "a question")
        return "an answer"

    client = FakeClient(script)
    config = MagpieConfig(count=6, system_prompts=[None, SYSTEM], seed=0)
    convs = Magpie(tok, client, config).run(range(6))
    # Odd conversations get the system prompt, which gemma's template refuses: nothing is sent for them.
    for c in convs[1::2]:
        assert c.system_prompt == 1 and c.reason == "template_unsplittable" and "System role not supported" in c.error
    assert [c.reason for c in convs[0::2]] == ["empty_instruction", "instruction_truncated", "llm_error"]
    assert convs[4].error == "server said 500"
    assert len(client.requests) == 3  # no answer is asked for an instruction that failed


def test_failed_answer_and_later_turn_are_rejected_with_the_turn_reached(base_tokenizer):
    tok = family_tokenizer(base_tokenizer, "llama3")
    state = {"queries": 0}

    def script(request):
        if request.prompt is not None:
            state["queries"] += 1
            return "" if state["queries"] == 2 else "a question"
        return "an answer"

    [conv] = Magpie(tok, FakeClient(script), MagpieConfig(count=1, turns=3)).run([0])
    assert conv.reason == "empty_instruction" and conv.turns == 1 and len(conv.messages) == 2
    [conv] = Magpie(tok, FakeClient(lambda r: "a question" if r.prompt else ("", "stop")), MagpieConfig(count=1)).run([0])
    assert conv.reason == "empty_response" and conv.turns == 0


def _magpie_stage(tmp_path, **options):
    from pipeline.config import build_stage

    llms = {"teacher": {"backend": "transformers", "model": str(tmp_path / "model")}}
    return build_stage("magpie", options, index=1, output_dir=tmp_path, llms=llms)


def test_the_stage_refuses_a_model_with_no_pre_query_point_before_any_work(base_tokenizer, tmp_path):
    tok = family_tokenizer(base_tokenizer, "qwen")
    tok.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | upper }}<|im_end|>\n{% endfor %}"
    tok.save_pretrained(tmp_path / "model")
    [problem] = _magpie_stage(tmp_path).check()
    assert problem.option == ("system_prompts",) and "no system prompt variant has a pre-query prefix" in problem.message
    # One variant that cannot be cut is not a config mistake: its conversations are dropped with the reason.
    family_tokenizer(base_tokenizer, "gemma").save_pretrained(tmp_path / "model")
    assert _magpie_stage(tmp_path, system_prompts=[None, SYSTEM]).check() == []
    [problem] = _magpie_stage(tmp_path, system_prompts=[SYSTEM]).check()
    assert "System role not supported" in problem.message


def test_the_stage_names_a_tokenizer_it_cannot_load(tmp_path):
    [problem] = _magpie_stage(tmp_path, tokenizer=str(tmp_path / "missing")).check()
    assert problem.option == ("tokenizer",) and "cannot load the tokenizer" in problem.message
