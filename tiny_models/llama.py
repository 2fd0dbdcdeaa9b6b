"""A tiny chat model built on this machine: a BPE tokenizer trained on given texts and a random Llama.

Tests, benchmarks and the CPU vLLM server need a real model that loads with `AutoModelForCausalLM`
and `AutoTokenizer` from a local path, and nothing may come from the Hugging Face Hub. The model's
head dimension is 64 because vLLM's CPU attention kernels support only a few head sizes.

The chat template lives here once and is saved with the tokenizer, so training, generation (vLLM
reads `chat_template` from tokenizer_config.json) and export all render conversations identically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
PAD = "<|pad|>"
TURN_START = "<|im_start|>"
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, TURN_START, END_OF_TURN]

# ChatML with a BOS in front; the end-of-turn token closes every turn, the assistant's included.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 3000):
    """Train a byte-level BPE on `texts` and wrap it as a PreTrainedTokenizerFast with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[TURN_START, END_OF_TURN],
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    vocab_size: int = 3000,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 2,
    head_dim: int = 64,
    seed: int = 0,
) -> Path:
    """Save a random-weight Llama and its locally trained tokenizer to `out_dir`; return the path."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(texts, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # Generation stops at the end of a turn (or at EOS); vLLM reads this from generation_config.json.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _make_tokenizer_config_portable(out / "tokenizer_config.json")
    return out


def _make_tokenizer_config_portable(path: Path) -> None:
    """Name the tokenizer class and inline the chat template the way transformers 4.x reads them.

    vLLM's CPU build runs in its own environment with an older transformers, which knows neither
    transformers 5's `TokenizersBackend` class name nor a chat template kept only in a .jinja file.
    """
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["chat_template"] = CHAT_TEMPLATE
    config["additional_special_tokens"] = config.pop("extra_special_tokens")  # 4.x expects a dict there
    path.write_text(json.dumps(config, indent=2))
