"""The SFT loop on real instruction data: it learns, accumulates exactly, and resumes exactly."""

import json
import shutil

import pytest
import torch

from pipeline.train.data import ChatEncoder, MicroBatchOrder, collate, token_logps
from pipeline.train.model import load_model, load_tokenizer
from pipeline.train.output import Output
from pipeline.train.run import seed_everything
from pipeline.train.sft import accumulate_gradients, eval_loss, train_sft

CPU = torch.device("cpu")


def encoded(cfg, chats):
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
    return tokenizer, [encoder.encode(c) for c in chats]


@pytest.mark.slow
def test_loss_falls_on_real_instruction_data(make_config, seed_chats, tmp_path):
    cfg = make_config(sft={"max_steps": 8, "learning_rate": 2e-2, "schedule": "constant", "max_seq_len": 96})
    tokenizer, examples = encoded(cfg, seed_chats[:32])
    seed_everything(0)
    model = load_model(cfg)
    before = eval_loss(model, examples, cfg, tokenizer.pad_token_id, CPU)
    history = train_sft(model, tokenizer, examples, [], [], cfg, Output(tmp_path))
    after = eval_loss(model, examples, cfg, tokenizer.pad_token_id, CPU)
    assert after < before - 0.15, (before, after)
    assert [h["step"] for h in history] == list(range(1, 9))
    logged = [json.loads(line) for line in (tmp_path / "logs" / "sft.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in logged] == [h["loss"] for h in history]


def test_accumulated_gradients_equal_full_batch_gradients(make_config, seed_chats):
    cfg = make_config(method="full")
    tokenizer, examples = encoded(cfg, seed_chats[:8])
    assert len({e.n_targets for e in examples}) > 4  # variable-length targets make naive averaging wrong

    def gradients(micro_batch_size, naive=False):
        seed_everything(0)
        model = load_model(cfg)
        order = MicroBatchOrder(len(examples), micro_batch_size, seed=0)
        micro = [collate([examples[i] for i in order(k)], True, tokenizer.pad_token_id)
                 for k in range(len(examples) // micro_batch_size)]
        if naive:  # the common mistake: average per micro batch, then divide by the number of micro batches
            for batch in micro:
                (-token_logps(model, batch).mean() / len(micro)).backward()
        else:
            accumulate_gradients(model, micro, sum(e.n_targets for e in examples), cfg, CPU)
        return {name: p.grad for name, p in model.named_parameters()}

    full, accumulated, naive = gradients(8), gradients(2), gradients(2, naive=True)
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], atol=1e-5, rtol=0)
    assert max((naive[n] - full[n]).abs().max() for n in full) > 1e-4  # the check above can fail


@pytest.mark.slow
def test_resume_continues_the_identical_loss_curve(make_config, seed_chats, tmp_path):
    cfg = make_config(sft={"max_steps": 4, "checkpoint_every": 2, "micro_batch_size": 2, "grad_accum": 2,
                           "learning_rate": 5e-3, "warmup_ratio": 0.25}, lora={"dropout": 0.1})
    tokenizer, examples = encoded(cfg, seed_chats[:24])

    def run(out):
        seed_everything(0)
        return train_sft(load_model(cfg), tokenizer, examples, [], [], cfg, Output(out))

    straight = run(tmp_path / "a")
    run(tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "sft-00000004")  # as if the run died after step 2
    resumed = run(tmp_path / "b")
    assert [h["step"] for h in resumed] == [3, 4]
    assert [h["loss"] for h in resumed] == [h["loss"] for h in straight[2:]]
    logged = [json.loads(line) for line in (tmp_path / "b" / "logs" / "sft.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in logged] == [h["loss"] for h in straight]


def test_gradient_checkpointing_changes_no_gradient(make_config, seed_chats):
    def gradients(checkpointing):
        cfg = make_config(gradient_checkpointing=checkpointing, lora={"dropout": 0.0})
        tokenizer, examples = encoded(cfg, seed_chats[:4])
        seed_everything(0)
        model = load_model(cfg)
        with torch.no_grad():  # a non-zero adapter, so every LoRA matrix gets a gradient
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        accumulate_gradients(model, [collate(examples, True, tokenizer.pad_token_id)],
                             sum(e.n_targets for e in examples), cfg, CPU)
        return {name: p.grad for name, p in model.named_parameters() if p.requires_grad}

    plain, recomputed = gradients(False), gradients(True)
    assert all(g.abs().sum() > 0 for g in plain.values())
    for name in plain:
        torch.testing.assert_close(recomputed[name], plain[name], atol=1e-6, rtol=1e-5)
