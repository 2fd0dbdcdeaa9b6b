"""DPO: the loss is the published formula on our packed log-probs, and it learns a separable preference."""

import math

import pytest
import torch

from pipeline.train.data import ChatEncoder, PreferencePair
from pipeline.train.dpo import _pair_losses, dpo_loss, encode_pairs, evaluate, pair_batch, train_dpo
from pipeline.train.model import load_model, load_tokenizer
from pipeline.train.output import Output
from pipeline.train.run import seed_everything

CPU = torch.device("cpu")


def test_dpo_losses_match_the_formulas():
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-5.0, -7.0, -6.0, -6.5))
    h = (-5.0 - -7.0) - (-6.0 - -6.5)  # 1.5
    expected = {"sigmoid": math.log1p(math.exp(-0.1 * h)), "ipo": (h - 1 / 0.2) ** 2, "hinge": max(0.0, 1 - 0.1 * h)}
    for kind, value in expected.items():
        losses, chosen_reward, rejected_reward = dpo_loss(pc, pr, rc, rr, beta=0.1, kind=kind)
        assert losses.item() == pytest.approx(value, rel=1e-6)
        assert chosen_reward.item() == pytest.approx(0.1 * (-5.0 - -6.0))
        assert rejected_reward.item() == pytest.approx(0.1 * (-7.0 - -6.5))


def hand_logp(model, tokenizer, prompt, response) -> float:
    """Sum of log p(response tokens | prompt), from one unpacked forward pass and a plain log-softmax."""
    text = tokenizer.apply_chat_template(prompt + response, tokenize=False)
    prefix = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    start = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    end = ids[0].tolist().index(tokenizer.convert_tokens_to_ids("<|im_end|>"), start) + 1  # through end-of-turn
    logps = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    return sum(logps[t - 1, ids[0, t]].item() for t in range(start, end))


def test_dpo_loss_on_a_model_equals_the_hand_computed_value(make_config, seed_chats):
    cfg = make_config(skip_sft=True, dpo={"enabled": True, "beta": 0.5})
    tokenizer = load_tokenizer(cfg)
    seed_everything(0)
    model = load_model(cfg)
    with torch.no_grad():  # move the adapter off zero so policy and reference differ
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.eval()
    pairs = [PreferencePair(c[:1], c[1:], [{"role": "assistant", "content": "No."}]) for c in seed_chats[:3]]
    encoded = encode_pairs(ChatEncoder(tokenizer, 512), pairs)
    losses, stats = _pair_losses(model, pair_batch(encoded, tokenizer.pad_token_id, packing=True), None, cfg, CPU)
    expected = []
    with torch.no_grad():
        for p in pairs:
            policy = [hand_logp(model, tokenizer, p.prompt, r) for r in (p.chosen, p.rejected)]
            with model.disable_adapter():
                ref = [hand_logp(model, tokenizer, p.prompt, r) for r in (p.chosen, p.rejected)]
            h = (policy[0] - policy[1]) - (ref[0] - ref[1])
            expected.append(math.log1p(math.exp(-0.5 * h)))
    # float32 log-probs summed over up to ~1000 tokens carry ~1e-4 absolute error against the float64 hand sum
    assert losses.tolist() == pytest.approx(expected, abs=2e-4)
    assert stats["loss"] == pytest.approx(sum(expected), abs=5e-4)


@pytest.mark.slow
def test_reward_accuracy_rises_on_a_separable_preference_set(make_config, seed_chats, tmp_path):
    cfg = make_config(skip_sft=True, dpo={"enabled": True, "max_steps": 8, "learning_rate": 1e-2, "beta": 0.5,
                                         "micro_batch_size": 4, "grad_accum": 1, "max_seq_len": 96})
    tokenizer = load_tokenizer(cfg)
    refusal = [{"role": "assistant", "content": "I will not help with that."}]
    pairs = [PreferencePair(c[:1], c[1:], refusal) for c in seed_chats[:40]]
    encoded = encode_pairs(ChatEncoder(tokenizer, 96), pairs)
    train, held_out = encoded[:32], encoded[32:]
    seed_everything(0)
    model = load_model(cfg)
    before = evaluate(model, held_out, None, cfg, tokenizer.pad_token_id, CPU)
    history = train_dpo(model, tokenizer, train, [], cfg, Output(tmp_path))
    after = evaluate(model, held_out, None, cfg, tokenizer.pad_token_id, CPU)
    assert before["reward_accuracy"] < 0.5 and after["reward_accuracy"] >= 0.75, (before, after)
    assert after["margin"] > before["margin"] and history[-1]["loss"] < history[0]["loss"]
    assert {"chosen_logps", "rejected_logps", "margin", "reward_accuracy"} <= set(history[-1])
