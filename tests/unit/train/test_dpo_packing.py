"""Packed preference pairs: one row per micro batch gives the log-probs and losses of padded rows, pair by pair.

In fp32, on the CPU always and on a GPU when there is one (where packed rows take the GPU's attention path).
"""

import pytest
import torch

from pipeline.train.data import ChatEncoder, PreferencePair
from pipeline.train.dpo import _pair_losses, encode_pairs, pair_batch, sequence_logps, train_dpo
from pipeline.train.model import load_model, load_tokenizer
from pipeline.train.output import Output
from pipeline.train.run import seed_everything

CPU = torch.device("cpu")
REFUSAL = [{"role": "assistant", "content": "I will not help with that."}]
GPU = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))


@pytest.fixture(params=["cpu", GPU])
def policy(request, make_config):
    """The tiny model with a LoRA adapter moved off zero, so policy and reference differ."""
    cfg = make_config(skip_sft=True, dpo={"enabled": True, "beta": 0.5}, precision="fp32",
                      use_gpu=request.param == "cuda")
    seed_everything(0)
    model = load_model(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model.eval(), load_tokenizer(cfg), cfg


def pairs_of(tokenizer, seed_chats, n, max_seq_len=128):
    pairs = [PreferencePair(c[:1], c[1:], REFUSAL) for c in seed_chats[:n]]
    return encode_pairs(ChatEncoder(tokenizer, max_seq_len), pairs)


def lengths_of(pairs):
    return [len(e.input_ids) for pair in pairs for e in pair]


def test_packed_and_padded_pairs_give_the_same_logps_and_losses(policy, seed_chats, make_config):
    model, tokenizer, cfg = policy
    device = next(model.parameters()).device
    pairs = pairs_of(tokenizer, seed_chats, 4)
    assert len(set(lengths_of(pairs))) > 2  # chosen and rejected of different lengths: padding is really exercised
    packed, padded = (pair_batch(pairs, tokenizer.pad_token_id, packing=p).to(device) for p in (True, False))
    assert packed.input_ids.shape[0] == 1 and padded.input_ids.shape[0] == 8
    assert packed.input_ids.numel() == sum(lengths_of(pairs)) < padded.input_ids.numel()
    with torch.no_grad():
        for normalised in (False, True):
            a, b = (sequence_logps(model, batch, normalised) for batch in (packed, padded))
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-6)
        for loss in ("sigmoid", "ipo"):
            loss_cfg = cfg.model_copy(update={"dpo": cfg.dpo.model_copy(update={"loss": loss})})
            (la, sa), (lb, sb) = (_pair_losses(model, batch, None, loss_cfg, device) for batch in (packed, padded))
            torch.testing.assert_close(la, lb, atol=1e-5, rtol=1e-6)
            torch.testing.assert_close(sa, sb, atol=1e-4, rtol=1e-6)


def test_a_pairs_logps_do_not_depend_on_the_pairs_packed_beside_it(policy, seed_chats):
    model, tokenizer, _ = policy
    pairs = pairs_of(tokenizer, seed_chats, 5)

    def packed(some):
        batch = pair_batch(some, tokenizer.pad_token_id, packing=True).to(next(model.parameters()).device)
        return sequence_logps(model, batch).view(-1, 2)

    with torch.no_grad():
        together, reversed_ = packed(pairs), packed(pairs[::-1])
        alone = torch.cat([packed([p]) for p in pairs])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(together, reversed_.flip(0), atol=1e-5, rtol=1e-6)
    assert (together[:, 0] != together[:, 1]).all() and together.unique().numel() == together.numel()


@pytest.mark.slow
def test_dpo_packing_false_trains_on_padded_rows_to_the_same_losses(make_config, seed_chats, tmp_path):
    tokenizer = load_tokenizer(make_config())
    pairs = pairs_of(tokenizer, seed_chats, 12, max_seq_len=96)
    runs = {}
    for packing in (True, False):
        cfg = make_config(skip_sft=True, dpo={"enabled": True, "max_steps": 3, "learning_rate": 1e-2, "beta": 0.5,
                                             "micro_batch_size": 3, "grad_accum": 2, "max_seq_len": 96,
                                             "packing": packing})
        seed_everything(0)
        model = load_model(cfg)
        rows = []
        model.register_forward_hook(lambda module, args, kwargs, output: rows.append(kwargs["input_ids"].shape[0]),
                                    with_kwargs=True)
        history = train_dpo(model, tokenizer, pairs[:9], pairs[9:], cfg, Output(tmp_path / str(packing)))
        runs[packing] = history, set(rows)
    (packed, packed_rows), (padded, padded_rows) = runs[True], runs[False]
    assert packed_rows == {1} and padded_rows == {6}  # 3 pairs: one row, or six padded rows
    assert packed[-1]["loss"] != packed[0]["loss"] and "eval_loss" in packed[-1]  # it trained, and evaluated
    for a, b in zip(packed, padded):
        for key in ("loss", "margin", "chosen_logps", "rejected_logps", "eval_loss"):
            if key in a:
                    assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["step"], key)
