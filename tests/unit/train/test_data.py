"""Templating, label masks and packing: what the loss sees must be exactly the assistant's tokens."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.errors import UserError
from pipeline.train.data import IGNORE, ChatEncoder, collate, hh_dialogue_to_messages, preference_pairs, token_logps
from tiny_models.llama import END_OF_TURN

CHAT = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Name a prime number."},
    {"role": "assistant", "content": "Seven."},
    {"role": "user", "content": "And an even one?"},
    {"role": "assistant", "content": "Two is the only even prime."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_labels_are_exactly_the_assistant_turns_with_end_of_turn(tokenizer):
    encoder = ChatEncoder(tokenizer, max_seq_len=512)
    example = encoder.encode(CHAT)
    labels = [IGNORE] + example.targets[:-1]  # undo the shift: the label of each input position
    learned = [tok for tok, lab in zip(example.input_ids, labels) if lab != IGNORE]
    assert [lab for lab in labels if lab != IGNORE] == learned
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    # Split the learned tokens at each end-of-turn: one run per assistant turn, content then end-of-turn.
    turns, current = [], []
    for tok in learned:
        current.append(tok)
        if tok == eot:
            turns.append(current)
            current = []
    assert current == []
    assistant = [m["content"] for m in CHAT if m["role"] == "assistant"]
    assert [tokenizer.decode(t[:-1]) for t in turns] == assistant
    # Everything not learned decodes to the system/user turns and the template's scaffolding.
    masked = tokenizer.decode([tok for tok, lab in zip(example.input_ids, labels) if lab == IGNORE])
    assert "Name a prime number." in masked and "Seven" not in masked and "only even prime" not in masked


def test_dpo_encoding_learns_only_the_response(tokenizer):
    encoder = ChatEncoder(tokenizer, max_seq_len=512)
    example = encoder.encode(CHAT, first_labelled_turn=4)
    learned = [t for t in example.targets if t != IGNORE]
    assert tokenizer.decode(learned[:-1]) == CHAT[4]["content"]


def test_packed_loss_equals_padded_loss(tiny_model_dir, tokenizer, seed_chats):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    encoder = ChatEncoder(tokenizer, max_seq_len=96)
    examples = [encoder.encode(c) for c in seed_chats[:6]]
    assert len({len(e.input_ids) for e in examples}) > 1  # variable lengths, so padding is really exercised
    with torch.no_grad():
        packed = token_logps(model, collate(examples, packing=True, pad_id=tokenizer.pad_token_id))
        padded = token_logps(model, collate(examples, packing=False, pad_id=tokenizer.pad_token_id))
        alone = torch.cat([token_logps(model, collate([e], packing=True, pad_id=0)) for e in examples])
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)


def test_hh_dialogue_and_preference_prompt_split():
    chosen = hh_dialogue_to_messages("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: No.")
    rejected = hh_dialogue_to_messages("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: A rude one.")
    assert [m["role"] for m in chosen] == ["user", "assistant", "user", "assistant"]
    (pair,) = preference_pairs([{"chosen": chosen, "rejected": rejected}])
    assert pair.prompt == chosen[:3]
    assert pair.chosen == [{"role": "assistant", "content": "No."}]
    assert pair.rejected == [{"role": "assistant", "content": "A rude one."}]
    with pytest.raises(UserError):
        preference_pairs([{"chosen": chosen, "rejected": []}])
