"""The locally built model must load like any Hub model and render chats with its own template."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tiny_models.llama import END_OF_TURN


def test_tiny_model_loads_and_templates(tiny_model_dir, seed_chats):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tokenizer.apply_chat_template(seed_chats[0], tokenize=True, return_dict=False)
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3
    assert ids.count(tokenizer.convert_tokens_to_ids(END_OF_TURN)) == len(seed_chats[0])
    assert model.config.head_dim == 64
    logits = model(input_ids=torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))
