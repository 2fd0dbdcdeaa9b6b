"""DPO's precomputed references are computed once per key and read back by the next run, fresh or resumed.

Whether the reference pass ran is seen on the model itself: with no held-out pairs, the only no-grad
forward passes of a DPO run with precomputed references are those of the reference pass.
"""

import shutil

import pytest
import torch

from pipeline.train import reference_cache
from pipeline.train.data import ChatEncoder, PreferencePair
from pipeline.train.dpo import encode_pairs, train_dpo
from pipeline.train.model import load_model, load_tokenizer
from pipeline.train.output import Output
from pipeline.train.run import seed_everything

CPU = torch.device("cpu")
REFUSAL = [{"role": "assistant", "content": "I will not help with that."}]
DPO = {"enabled": True, "reference": "precomputed", "max_steps": 2, "learning_rate": 1e-2, "beta": 0.5,
       "micro_batch_size": 2, "grad_accum": 1, "max_seq_len": 96}


def encoded(tokenizer, seed_chats, n=8, max_seq_len=96, offset=0):
    pairs = [PreferencePair(c[:1], c[1:], REFUSAL) for c in seed_chats[offset : offset + n]]
    return encode_pairs(ChatEncoder(tokenizer, max_seq_len), pairs)


class Stopped(Exception):
    """The run was stopped (as by a kill) after its reference pass, before its first DPO checkpoint."""


class Passes:
    """Counts the model's forward passes with and without grad; optionally stops the run at the first with grad."""

    def __init__(self, model, stop: bool = False):
        self.no_grad = self.grad = 0
        self.stop = stop
        model.register_forward_hook(self)

    def __call__(self, module, args, output):
        if not torch.is_grad_enabled():
            self.no_grad += 1
            return
        self.grad += 1
        if self.stop:
            raise Stopped


def run_dpo(make_config, pairs, out, stop=False, resume=False, **dpo):
    """A DPO run of the tiny model straight from the base (fresh adapter), into `out`; its history and passes."""
    cfg = make_config(skip_sft=True, resume=resume, dpo={**DPO, **dpo})
    seed_everything(0)
    model = load_model(cfg)
    passes = Passes(model, stop)
    history = train_dpo(model, load_tokenizer(cfg), pairs, [], cfg, Output(out))
    return history, passes


@pytest.fixture
def tokenizer(make_config):
    return load_tokenizer(make_config())


@pytest.fixture
def first(make_config, tokenizer, seed_chats, tmp_path, capsys):
    """A first run, which computes the references (8 pairs, 2 per pass) and keeps them in its output."""
    history, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), tmp_path / "first")
    assert passes.no_grad == 4
    assert f"computed for 8 pairs (none cached), kept in {tmp_path / 'first' / reference_cache.FILE}" in capsys.readouterr().err
    return history, tmp_path / "first" / reference_cache.FILE


def beside(cache, folder):
    """A fresh output folder holding only the first run's cached references."""
    folder.mkdir()
    shutil.copy(cache, folder / reference_cache.FILE)
    return folder


def test_the_next_run_reads_the_references_and_reaches_the_same_losses(first, make_config, tokenizer, seed_chats,
                                                                         tmp_path, capsys):
    history, cache = first
    again, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), cache.parent)  # resume: false
    assert passes.no_grad == 0 and passes.grad == 2
    assert "DPO reference log-probs of 8 pairs read from" in capsys.readouterr().err
    assert [(r["loss"], r["margin"], r["chosen_logps"]) for r in again] == \
           [(r["loss"], r["margin"], r["chosen_logps"]) for r in history]  # bit for bit

    # beta, the loss kind (but IPO's normalisation), batch sizes and packing leave the references as they are
    other = {"beta": 0.1, "loss": "hinge", "micro_batch_size": 4, "packing": False, "learning_rate": 1e-3}
    _, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), beside(cache, tmp_path / "other"), **other)
    assert passes.no_grad == 0 and "read from" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("change, pairs, why", [
    ({}, {"offset": 8}, "data changed"),
    ({"max_seq_len": 64}, {"max_seq_len": 64}, "data and max_seq_len changed"),
    ({"loss": "ipo"}, {}, "length normalisation changed"),
])
def test_what_decides_the_references_recomputes_them_and_says_so(first, make_config, tokenizer, seed_chats, tmp_path,
                                                                   capsys, change, pairs, why):
    _, cache = first
    out = beside(cache, tmp_path / "changed")
    _, passes = run_dpo(make_config, encoded(tokenizer, seed_chats, **pairs), out, **change)
    assert passes.no_grad == 4
    assert f"computed for 8 pairs ({why})" in capsys.readouterr().err
    # the run after it reads what it kept
    _, passes = run_dpo(make_config, encoded(tokenizer, seed_chats, **pairs), out, **change)
    assert passes.no_grad == 0


@pytest.mark.slow
def test_a_run_stopped_before_its_first_checkpoint_resumes_with_the_kept_references(first, make_config, tokenizer,
                                                                                     seed_chats, tmp_path, capsys):
    history, _ = first
    out = tmp_path / "stopped"
    with pytest.raises(Stopped):
        run_dpo(make_config, encoded(tokenizer, seed_chats), out, stop=True, resume=True)
    assert not (out / "checkpoints").exists() and (out / reference_cache.FILE).exists()
    capsys.readouterr()
    resumed, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), out, resume=True)
    assert passes.no_grad == 0 and "read from" in capsys.readouterr().err
    assert [r["loss"] for r in resumed] == [r["loss"] for r in history]


def test_the_key_follows_the_weights_and_the_data_and_nothing_else(make_config, tokenizer, seed_chats):
    cfg = make_config(skip_sft=True, dpo=DPO)
    seed_everything(0)
    model = load_model(cfg)
    pairs = encoded(tokenizer, seed_chats)
    parts = reference_cache.key_parts(model, pairs, [], cfg, CPU)

    def changed(model=model, train=pairs, held_out=(), cfg=cfg):
        new = reference_cache.key_parts(model, train, list(held_out), cfg, CPU)
        return [name for name in parts if new[name] != parts[name]]

    assert changed() == []
    assert changed(held_out=pairs[:1]) == ["data"]  # a pair moved to the held-out side
    assert changed(train=[pairs[0][::-1]] + pairs[1:]) == ["data"]  # chosen and rejected swapped
    assert changed(cfg=make_config(skip_sft=True, dpo={**DPO, "beta": 1.0, "micro_batch_size": 3})) == []
    assert changed(cfg=make_config(skip_sft=True, dpo=DPO, lora={"alpha": 8.0})) == ["adapter"]
    assert changed(cfg=make_config(skip_sft=True, dpo=DPO, precision="bf16")) == ["precision"]
    with torch.no_grad():
        lora_b = next(p for name, p in model.named_parameters() if "lora_B" in name)
        lora_b.add_(1e-3)  # training moved the adapter (as SFT does before DPO)
        assert changed() == ["adapter"]
        lora_b.sub_(1e-3)
        assert changed() == []
        embedding = model.get_input_embeddings().weight
        embedding[7, 3] += 1e-3  # another base model of the same shape
        assert changed() == ["base model"]


@pytest.mark.slow
def test_references_are_kept_in_an_output_in_object_storage(make_config, tokenizer, seed_chats, s3_bucket, capsys):
    out = f"{s3_bucket}/finetune"
    history, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), out)
    assert passes.no_grad == 4 and f"kept in {out}/{reference_cache.FILE}" in capsys.readouterr().err
    again, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), out)
    assert passes.no_grad == 0 and f"read from {out}/{reference_cache.FILE}" in capsys.readouterr().err
    assert [r["loss"] for r in again] == [r["loss"] for r in history]


@pytest.mark.slow
def test_a_damaged_cache_is_computed_again(first, make_config, tokenizer, seed_chats, capsys):
    history, cache = first
    cache.write_bytes(cache.read_bytes()[:100])  # e.g. copied in part by hand
    again, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), cache.parent)
    assert passes.no_grad == 4 and "(the kept file is unreadable: " in capsys.readouterr().err
    assert [r["loss"] for r in again] == [r["loss"] for r in history]
    _, passes = run_dpo(make_config, encoded(tokenizer, seed_chats), cache.parent)
    assert passes.no_grad == 0  # and written whole again


class Frozen(torch.nn.Module):
    """A large frozen matrix (sampled) and a small trainable one (whole), as a base and its adapter."""

    def __init__(self):
        super().__init__()
        self.big = torch.nn.Parameter(torch.randn(1100, 1000, generator=torch.Generator().manual_seed(0)),
                                      requires_grad=False)
        self.small = torch.nn.Parameter(torch.randn(16, 1000, generator=torch.Generator().manual_seed(1)))


def test_weights_over_a_million_values_are_hashed_by_an_even_sample_of_them():
    net = Frozen()
    base, adapter = (reference_cache._weights_digest(net, trainable=t) for t in (False, True))
    stride = net.big.numel() // reference_cache.SAMPLE
    flat = net.big.view(-1)
    with torch.no_grad():
        kept = flat[stride * 100].item()
        flat[stride * 100] += 1.0  # a sampled value
        assert reference_cache._weights_digest(net, trainable=False) != base
        flat[stride * 100] = kept
        assert reference_cache._weights_digest(net, trainable=False) == base
        flat[stride * 100 + 1] += 1.0  # between two samples: the limit of sampling
        assert reference_cache._weights_digest(net, trainable=False) == base
        net.big.mul_(1.0001)  # what any training or another checkpoint does
        assert reference_cache._weights_digest(net, trainable=False) != base
        net.small.view(-1)[12345] += 1e-6  # small tensors are hashed whole
        assert reference_cache._weights_digest(net, trainable=True) != adapter


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_weights_digest_is_the_same_on_a_gpu():
    net = Frozen()
    on_cpu = [reference_cache._weights_digest(net, trainable=t) for t in (False, True)]
    net.cuda()
    assert [reference_cache._weights_digest(net, trainable=t) for t in (False, True)] == on_cpu
    net.to(torch.bfloat16)  # the dtype is part of the digest
    assert reference_cache._weights_digest(net, trainable=False) != on_cpu[0]
