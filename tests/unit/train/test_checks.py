"""Each pre-training check stops a broken setup with a clear message, and lets a sound one through."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.errors import UserError
from pipeline.train.checks import (
    check_all,
    check_bos,
    check_end_of_turn,
    check_pad_token,
    check_serving_template,
    check_untrained_embeddings,
)
from pipeline.train.data import ChatEncoder
from tiny_models.llama import CHAT_TEMPLATE

NO_BOS = CHAT_TEMPLATE.replace("{{ bos_token }}", "")
TWO_BOS = "{{ bos_token }}" + CHAT_TEMPLATE
NO_END_OF_TURN = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
WITH_DEFAULT_SYSTEM = CHAT_TEMPLATE.replace(
    "{{ bos_token }}", "{{ bos_token }}{% if messages[0]['role'] != 'system' %}<|im_start|>system\nBe helpful.<|im_end|>\n{% endif %}"
)


@pytest.fixture
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def encode(tokenizer, chats, template=None):
    if template:
        tokenizer.chat_template = template
    encoder = ChatEncoder(tokenizer, 256)
    return encoder, [encoder.encode(c) for c in chats]


def test_a_sound_setup_passes_every_check(tiny_model_dir, tokenizer, seed_chats):
    encoder, examples = encode(tokenizer, seed_chats[:8])
    check_all(encoder, AutoModelForCausalLM.from_pretrained(tiny_model_dir), seed_chats[:8], examples, tiny_model_dir)


def test_pad_equal_to_eos_is_refused(tokenizer):
    tokenizer.pad_token = tokenizer.eos_token
    with pytest.raises(UserError, match="pad token equals EOS"):
        check_pad_token(tokenizer)


@pytest.mark.parametrize(("template", "message"), [(NO_BOS, "no BOS"), (TWO_BOS, "2 BOS")])
def test_missing_or_doubled_bos_is_refused(tokenizer, seed_chats, template, message):
    _, examples = encode(tokenizer, seed_chats[:2], template)
    with pytest.raises(UserError, match=message):
        check_bos(tokenizer, examples)


def test_assistant_turns_without_end_of_turn_are_refused(tokenizer, seed_chats):
    encoder, examples = encode(tokenizer, seed_chats[:2], NO_END_OF_TURN)
    with pytest.raises(UserError, match="no special end-of-turn token"):
        check_end_of_turn(encoder, examples)


def test_untrained_embedding_rows_used_by_the_data_are_refused(tiny_model_dir, tokenizer, seed_chats):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    _, examples = encode(tokenizer, seed_chats[:4])
    check_untrained_embeddings(model, tokenizer, examples)
    with torch.no_grad():
        model.get_input_embeddings().weight[examples[0].input_ids[5]] = 0.0
    with pytest.raises(UserError, match="untrained"):
        check_untrained_embeddings(model, tokenizer, examples)


def test_a_template_that_serves_differently_is_refused(tokenizer, seed_chats, tmp_path):
    encoder, _ = encode(tokenizer, seed_chats[:2])
    served = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    served.chat_template = WITH_DEFAULT_SYSTEM
    served.save_pretrained(tmp_path)
    with pytest.raises(UserError, match="differently for serving"):
        check_serving_template(encoder, seed_chats[:2], tmp_path)


def test_a_model_folder_without_its_tokenizer_is_one_line(make_config, tiny_model_dir, tmp_path):
    """Before, transformers' ValueError came out as a traceback."""
    import shutil

    from pipeline.errors import UserError
    from pipeline.train.model import load_tokenizer

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, bare / name)
    with pytest.raises(UserError, match=r"cannot load a tokenizer from '.*bare': the folder .*bare has no tokenizer files \("):
        load_tokenizer(make_config().model_copy(update={"model": str(bare)}))
