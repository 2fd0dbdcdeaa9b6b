"""Checks that stop a run before it trains a model that cannot work, each with a message that says the fix.

Every one of these has silently ruined real fine-tunes: a pad token equal to EOS (the model never
learns to stop, because EOS is masked as padding), a missing or doubled BOS, assistant turns with no
end-of-turn token, training on embedding rows the base never trained (they are ~zero, gradients
explode), and a chat template that renders differently when the model is served.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.errors import UserError
from pipeline.train.data import ChatEncoder, Encoded

SAMPLE = 32  # conversations the template checks render; enough to hit every role pattern of a dataset


def check_all(encoder: ChatEncoder, model, chats: list[list[dict]], examples: list[Encoded], saved_tokenizer: Path) -> None:
    check_pad_token(encoder.tokenizer)
    check_bos(encoder.tokenizer, examples)
    check_end_of_turn(encoder, examples)
    check_untrained_embeddings(model, encoder.tokenizer, examples)
    check_serving_template(encoder, chats, saved_tokenizer)


def check_pad_token(tokenizer) -> None:
    if tokenizer.pad_token_id is None:
        return
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise UserError(
            f"the pad token equals EOS ({tokenizer.eos_token!r}): add a dedicated pad token to the tokenizer "
            "(tokenizer.add_special_tokens({'pad_token': '<|pad|>'})) so EOS is not masked as padding"
        )


def check_bos(tokenizer, examples: list[Encoded]) -> None:
    """A tokenizer with a BOS token expects exactly one at the start of every templated example."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return
    for i, example in enumerate(examples[:SAMPLE]):
        leading = next((n for n, t in enumerate(example.input_ids) if t != bos), len(example.input_ids))
        if leading == 0:
            raise UserError(
                f"example {i} has no BOS token ({tokenizer.bos_token!r}) after templating: "
                "add {{ bos_token }} to the chat template"
            )
        if leading > 1:
            raise UserError(
                f"example {i} starts with {leading} BOS tokens after templating: the chat template and the "
                "tokenizer both add one; remove {{ bos_token }} from the template or the data"
            )


def check_end_of_turn(encoder: ChatEncoder, examples: list[Encoded]) -> None:
    if encoder.end_of_turn_id is None:
        raise UserError(
            "the chat template puts no special end-of-turn token after assistant messages, so the model "
            "cannot learn to stop: use a template that closes turns (e.g. <|im_end|> or EOS)"
        )
    missing = sum(e.missing_end_of_turn and not e.truncated for e in examples)
    if missing:
        raise UserError(f"{missing} examples have an assistant turn without the end-of-turn token after templating")


def check_untrained_embeddings(model, tokenizer, examples: list[Encoded], relative: float = 1e-3) -> None:
    """Token ids the data uses whose embedding row is ~zero compared with the typical row."""
    weight = model.get_input_embeddings().weight.detach().float()
    norms = weight.norm(dim=1)
    used = torch.tensor(sorted({t for e in examples for t in e.input_ids}), dtype=torch.long)
    cold = used[norms[used] <= relative * norms.median()]
    if len(cold):
        names = ", ".join(repr(t) for t in tokenizer.convert_ids_to_tokens(cold[:5].tolist()))
        raise UserError(
            f"the data uses {len(cold)} tokens whose embeddings are untrained (near zero), e.g. {names}: "
            "initialise those rows (e.g. to the mean embedding) or train the embeddings, or use another template"
        )


def check_serving_template(encoder: ChatEncoder, chats: list[list[dict]], saved_tokenizer: Path) -> None:
    """Training ids must start with exactly what a server sends for each prompt, with the saved tokenizer.

    A server renders the conversation up to an assistant turn with add_generation_prompt=True using the
    tokenizer saved next to the adapter; if those ids are not a prefix of what we trained on, the model
    sees at inference a context it never saw in training.
    """
    from transformers import AutoTokenizer

    served = AutoTokenizer.from_pretrained(saved_tokenizer)
    for n, chat in enumerate(chats[:SAMPLE]):
        trained = encoder.tokenizer(encoder.render(chat), add_special_tokens=False)["input_ids"]
        for i, message in enumerate(chat):
            if message["role"] != "assistant":
                continue
            prompt = served.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)
            ids = served(prompt, add_special_tokens=False)["input_ids"]
            if trained[: len(ids)] != ids:
                at = next((k for k, (a, b) in enumerate(zip(trained, ids)) if a != b), min(len(ids), len(trained)))
                raise UserError(
                    f"the chat template renders conversation {n} differently for serving than for training "
                    f"(first difference at token {at}): make the saved tokenizer's template the one used to train"
                )
