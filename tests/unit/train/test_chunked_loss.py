"""The loss over the vocabulary in chunks: the same log-probs and gradients, never the whole [tokens, vocab] logits."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.train.data import IGNORE, ChatEncoder, collate, token_logps
from pipeline.train.model import load_model, load_tokenizer


def plain_logps(model, batch):
    """The straightforward computation: the model's own logits at every target position, one log-softmax."""
    keep = batch.targets != IGNORE
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=batch.attention_mask,
                   use_cache=False).logits
    return -torch.nn.functional.cross_entropy(logits[keep].float(), batch.targets[keep], reduction="none")


@pytest.fixture(scope="module")
def batches(tiny_model_dir, seed_chats):
    from pipeline.train.config import FinetuneConfig

    tokenizer = load_tokenizer(FinetuneConfig(model=str(tiny_model_dir)))
    encoder = ChatEncoder(tokenizer, max_seq_len=128)
    examples = [encoder.encode(c) for c in seed_chats[:6]]
    return {packing: collate(examples, packing, tokenizer.pad_token_id) for packing in (True, False)}


@pytest.mark.parametrize("method", ["lora", "full"])  # full: the LM head itself gets a gradient through the chunks
@pytest.mark.parametrize("packing", [True, False])
def test_chunked_logps_and_gradients_equal_the_plain_computation(make_config, batches, method, packing):
    batch = batches[packing]
    model = load_model(make_config(method=method))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # a fresh adapter is B = 0: give every LoRA weight a gradient
                p.normal_(0, 0.1)
    vocab = model.get_output_embeddings().weight.shape[0]
    assert batch.n_targets > 7 * 4  # several chunks of 7 tokens, the last one partial

    def run(compute):
        model.zero_grad()
        logps = compute()
        (-logps.sum()).backward()
        return logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    chunked, chunked_grads = run(lambda: token_logps(model, batch, chunk_logits=7 * vocab))
    plain, plain_grads = run(lambda: plain_logps(model, batch))
    torch.testing.assert_close(chunked, plain, atol=1e-5, rtol=1e-5)
    assert chunked_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(chunked_grads[name], grad, atol=1e-6 + 1e-5 * float(grad.abs().max()), rtol=0)
    if method == "full":
        assert plain_grads["lm_head.weight"].abs().sum() > 0


class LargestVocabTensor(TorchDispatchMode):
    """Counts, over every operator output, the largest tensor with a vocabulary-sized dimension (logits,
    their softmax, their gradient), other than the embedding and head weights and their views."""

    def __init__(self, model):
        super().__init__()
        self.weight_shapes = {tuple(sorted(m.weight.shape)) for m in (model.get_input_embeddings(),
                                                                      model.get_output_embeddings())}
        self.vocab = model.get_output_embeddings().weight.shape[0]
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if (isinstance(t, torch.Tensor) and t.is_floating_point() and self.vocab in t.shape
                    and tuple(sorted(t.shape)) not in self.weight_shapes):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_tensor_holds_the_logits_of_every_target(make_config, batches):
    batch = batches[True]
    model = load_model(make_config())
    vocab = model.get_output_embeddings().weight.shape[0]
    rows = 16
    everything = batch.n_targets * vocab
    assert batch.n_targets > 8 * rows

    with LargestVocabTensor(model) as chunked:
        (-token_logps(model, batch, chunk_logits=rows * vocab).sum()).backward()
    # Forward and backward: no logits, probabilities or logit gradients beyond one chunk of target tokens.
    assert chunked.largest <= rows * vocab, (chunked.largest, rows * vocab)

    with LargestVocabTensor(model) as plain:  # the measurement sees a full logits tensor when there is one
        (-plain_logps(model, batch).sum()).backward()
    assert plain.largest >= everything


def test_small_batches_are_one_chunk(make_config, batches):
    """The default budget keeps a CPU-sized batch in one chunk: no recomputation in the backward pass."""
    batch = batches[True]
    model = load_model(make_config())
    with LargestVocabTensor(model) as seen:
        token_logps(model, batch).sum().backward()
    assert seen.largest == batch.n_targets * model.get_output_embeddings().weight.shape[0]


@pytest.mark.parametrize("packing", [True, False])
def test_models_that_change_logits_after_the_head_keep_their_own(tiny_model_dir, batches, packing):
    """Granite divides the head's output by `logits_scaling`: applying the head alone would be wrong."""
    from transformers import GraniteConfig, GraniteForCausalLM

    tokenizer_vocab = 1 + int(batches[True].input_ids.max())
    config = GraniteConfig(vocab_size=max(tokenizer_vocab, 2000), hidden_size=64, intermediate_size=128,
                           num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, logits_scaling=4.0)
    torch.manual_seed(0)
    model = GraniteForCausalLM(config)
    batch = batches[packing]
    with torch.no_grad():
        torch.testing.assert_close(token_logps(model, batch), plain_logps(model, batch), atol=1e-5, rtol=1e-5)
        head_alone = -torch.nn.functional.cross_entropy(
            model.lm_head(model.model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                                      attention_mask=batch.attention_mask).last_hidden_state)[batch.targets != IGNORE],
            batch.targets[batch.targets != IGNORE], reduction="none")
        assert (head_alone - plain_logps(model, batch)).abs().max() > 1e-3  # the head alone would be wrong
