"""Precision: 16-bit frozen weights, fp32 LoRA weights and optimizer state, 16-bit matmuls, and clear refusals."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from pydantic import ValidationError

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.train import model as model_module
from pipeline.train.data import ChatEncoder, collate, token_logps
from pipeline.train.loop import make_optimizer
from pipeline.train.model import autocast, load_model, load_tokenizer, resolve_precision, trainable_parameters

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_precision_rules(make_config, monkeypatch):
    assert resolve_precision(make_config(), CPU) == "fp32"
    assert resolve_precision(make_config(precision="bf16"), CPU) == "bf16"
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        resolve_precision(make_config(precision="fp16"), CPU)
    # The GPU rules, with the bf16 capability of the card pinned (no GPU needed to check the decision).
    monkeypatch.setattr(model_module, "_bf16_gpu", lambda: True)
    assert resolve_precision(make_config(), CUDA) == "bf16"
    assert resolve_precision(make_config(method="full"), CUDA) == "bf16"
    monkeypatch.setattr(model_module, "_bf16_gpu", lambda: False)
    assert resolve_precision(make_config(), CUDA) == "fp16"
    assert resolve_precision(make_config(method="full"), CUDA) == "fp32"  # fp16 without master weights: never by itself
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(UserError, match="bf16 is not native on Tesla T4"):
        resolve_precision(make_config(precision="bf16"), CUDA)
    with pytest.raises(ValidationError, match="fp32 master"):
        make_config(method="full", precision="fp16")


def test_bf16_weights_train_fp32_lora_with_16_bit_matmuls(make_config, seed_chats):
    cfg = make_config(precision="bf16")
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
    batch = collate([encoder.encode(c) for c in seed_chats[:4]], True, tokenizer.pad_token_id)
    model = load_model(cfg)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    trainable = trainable_parameters(model)
    assert frozen and {p.dtype for p in frozen} == {torch.bfloat16}  # half the memory of fp32
    assert trainable and {p.dtype for p in trainable} == {torch.float32}

    seen = []
    lora_a = next(m for name, m in model.named_modules() if name.endswith("q_proj.lora_A.default"))
    lora_a.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with autocast(cfg, CPU):
        logps = token_logps(model, batch)
    assert seen == [torch.bfloat16]  # the fp32 LoRA weights' matmul ran in bf16
    (-logps.mean()).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trainable)
    assert any(p.grad.abs().sum() > 0 for p in trainable)
    optimizer = make_optimizer(trainable, 1e-3)
    optimizer.step()
    assert {s["exp_avg"].dtype for s in optimizer.state.values()} == {torch.float32}

    # The same loss as fp32 weights, to bf16's precision.
    fp32 = load_model(make_config())
    with torch.no_grad():
        reference = token_logps(fp32, batch).mean()
    assert abs(float(logps.detach().mean()) - float(reference)) < 0.05 * abs(float(reference))


@pytest.fixture
def run_dir(tmp_path, seed_chats, tiny_model_dir):
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    rows = [{"id": str(i), "messages": chat} for i, chat in enumerate(seed_chats[:8])]
    pq.write_table(pa.Table.from_pylist(rows), run / "data" / "part-00000.parquet")
    return run


@pytest.mark.parametrize("settings, message", [
    (["precision=fp16"], "precision: fp16 needs a CUDA GPU"),
    (["method=full", "precision=fp16"], "fp32 master"),
    (["attention=flash_attention_2"], "flash_attention_2 needs a CUDA GPU"),
])
def test_impossible_precision_or_attention_exits_2_with_one_line(run_dir, tiny_model_dir, tmp_path, capsys,
                                                                  settings, message):
    sets = [arg for s in settings for arg in ("--set", s)]
    assert main(["finetune", str(run_dir), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_a_gpu_loads_16_bit_weights_and_a_variable_length_kernel(make_config, seed_chats):
    from pipeline.train import attention
    from pipeline.train.model import DTYPES, _flash_attn_installed

    cfg = make_config(use_gpu=True)
    precision = resolve_precision(cfg, CUDA)
    assert precision == ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16")
    model = load_model(cfg)
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {DTYPES[precision]}
    assert {p.dtype for p in trainable_parameters(model)} == {torch.float32}
    assert model.config._attn_implementation == ("flash_attention_2" if _flash_attn_installed() else attention.VARLEN)
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
    batch = collate([encoder.encode(c) for c in seed_chats[:4]], True, tokenizer.pad_token_id).to(CUDA)
    with autocast(cfg, CUDA):
        loss = -token_logps(model, batch).mean()
    loss.backward()
    assert torch.isfinite(loss) and 5 < float(loss) < 10  # about ln(vocab) for random weights
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable_parameters(model))
