"""Packed rows attend only within their own example, under every attention implementation we load.

A packed micro batch must give each example exactly the loss and the LoRA gradients it gets in a
padded batch, or alone; each test first shows that a leak across examples would be visible.
"""

import dataclasses

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from pipeline.train import attention
from pipeline.train.config import FinetuneConfig
from pipeline.train.data import ChatEncoder, collate, token_logps
from pipeline.train.model import autocast, load_model

CPU_IMPLEMENTATIONS = ["sdpa", "eager", "varlen"]


@pytest.fixture(scope="module")
def gqa_model_dir(tmp_path_factory, tiny_model_dir):
    """A random Llama with grouped-query attention (4 query heads share 2 key/value heads), the tiny tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("gqa") / "model"
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def examples(gqa_model_dir, seed_chats):
    tokenizer = AutoTokenizer.from_pretrained(gqa_model_dir)
    encoder = ChatEncoder(tokenizer, max_seq_len=160)
    by_length = {}
    for chat in seed_chats[:40]:  # five examples of different, untruncated lengths: padding and boundaries matter
        e = encoder.encode(chat)
        if not e.truncated:
            by_length.setdefault(len(e.input_ids), e)
    chosen = list(by_length.values())[:5]
    assert len(chosen) == 5
    return chosen, tokenizer.pad_token_id


def lora_model(model_dir, **settings):
    """The model as `pipeline finetune` loads it, with a non-zero LoRA B (fresh LoRA is B = 0, so
    every gradient but B's would be zero and the adapter would change nothing). Seeded: two loads
    under different attention implementations are the same model."""
    cfg = FinetuneConfig(model=str(model_dir), **settings)
    torch.manual_seed(1)
    model = load_model(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, cfg


def per_example(model, batch, cfg, device):
    with autocast(cfg, device):
        logps = token_logps(model, batch.to(device)).float()
    return torch.zeros(batch.n_examples, device=device).index_add(0, batch.example_index.to(device), logps)


def gradients(model, batch, cfg, device) -> torch.Tensor:
    model.zero_grad()
    (-per_example(model, batch, cfg, device).sum()).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


def leaky(packed):
    """The same packed row with its boundaries lost: one sequence, every token sees every earlier one."""
    width = packed.input_ids.shape[1]
    return dataclasses.replace(packed, attention_mask=torch.ones_like(packed.input_ids),
                               cu_seqlens=torch.tensor([0, width], dtype=torch.int32), longest=width)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_packed_loss_and_lora_gradients_equal_padded_and_alone(gqa_model_dir, examples, implementation):
    chosen, pad = examples
    cpu = torch.device("cpu")
    model, cfg = lora_model(gqa_model_dir, attention=implementation)
    expected = attention.VARLEN if implementation == "varlen" else implementation
    assert model.config._attn_implementation == expected
    packed, padded = collate(chosen, True, pad), collate(chosen, False, pad)
    with torch.no_grad():
        alone = torch.cat([per_example(model, collate([e], True, pad), cfg, cpu) for e in chosen])
        together = per_example(model, packed, cfg, cpu)
        assert (per_example(model, leaky(packed), cfg, cpu)[1:] - alone[1:]).abs().min() > 1e-3  # a leak shows
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(per_example(model, padded, cfg, cpu).detach(), alone, atol=1e-4, rtol=1e-6)
    g_packed, g_padded = gradients(model, packed, cfg, cpu), gradients(model, padded, cfg, cpu)
    # float32 sums in another order (another thread count: the tests run in any order) move a few
    # elements by up to 1.2e-5 of the largest; a leak moves them by more than 1e-3 of it (below).
    torch.testing.assert_close(g_packed, g_padded, atol=1e-4 * g_padded.abs().max(), rtol=0)
    g_leaky = gradients(model, leaky(packed), cfg, cpu)
    assert (g_leaky - g_padded).abs().max() > 1e-3 * g_padded.abs().max()  # a leak would show here too


def test_varlen_model_generates_like_sdpa(gqa_model_dir, examples):
    """Sample generation runs on the training model: the varlen attention must serve a KV-cached decode
    too. Each step's logits must be what sdpa gives the same tokens in one full forward. (Comparing the
    tokens two greedy decodes pick broke on another CPU: a random model's logits are near ties, and
    the two loads' LoRA A were not even the same.)"""
    ids = torch.tensor([examples[0][0].input_ids[:20]])
    varlen, _ = lora_model(gqa_model_dir, attention="varlen")
    sdpa, _ = lora_model(gqa_model_dir, attention="sdpa")
    with torch.no_grad():
        out = varlen.eval().generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                     do_sample=False, pad_token_id=examples[1], output_logits=True,
                                     return_dict_in_generate=True)
        decoded = torch.stack(out.logits, dim=1)[0]  # the logits of each generated token's step
        full = sdpa.eval()(input_ids=out.sequences).logits[0, ids.shape[1] - 1:-1]
        alone = sdpa(input_ids=out.sequences[:, ids.shape[1] - 1:-1]).logits[0]  # no earlier context
    torch.testing.assert_close(decoded, full, atol=1e-4, rtol=1e-4)
    assert (alone - full).abs().max() > 1e-2  # a decode that lost its cache would show


def test_cu_seqlens_from_restarting_positions():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    cu, longest = attention.cu_seqlens_from_positions(positions)
    assert cu.tolist() == [0, 3, 5, 9] and cu.dtype == torch.int32 and longest == 4
    packed = collate([dataclasses.replace(e) for e in _encoded_lengths([3, 2, 4])], True, pad_id=0)
    assert packed.cu_seqlens.tolist() == [0, 3, 5, 9] and packed.longest == 4
    assert packed.position_ids.tolist() == positions.tolist()


def _encoded_lengths(lengths):
    from pipeline.train.data import Encoded

    return [Encoded(list(range(1, n + 1)), list(range(2, n + 2))) for n in lengths]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("implementation", ["varlen", "flash_attention_2", "sdpa"])
def test_packed_equals_padded_on_gpu(gqa_model_dir, examples, implementation, monkeypatch):
    """bf16 weights on a GPU: the kernels differ between packed (variable-length) and padded (masked SDPA)
    rows, so equal means equal to bf16's precision, well inside the difference a leak makes. (On CPU in
    bf16 the same comparison differs by 0.04 at most, a leak by 0.3 to 4, in summed log-probs.)"""
    if implementation == "flash_attention_2":
        pytest.importorskip("flash_attn")
    chosen, pad = examples
    cuda = torch.device("cuda")
    calls = []
    real_kernel = attention._cuda_kernel
    monkeypatch.setattr(attention, "_cuda_kernel", lambda *a: calls.append(1) or real_kernel(*a))
    model, cfg = lora_model(gqa_model_dir, attention=implementation, use_gpu=True, precision="bf16")
    assert next(p for p in model.parameters() if not p.requires_grad).dtype == torch.bfloat16
    packed, padded = collate(chosen, True, pad), collate(chosen, False, pad)
    with torch.no_grad():
        alone = torch.cat([per_example(model, collate([e], True, pad), cfg, cuda) for e in chosen])
        together = per_example(model, packed, cfg, cuda)
        leak = (per_example(model, leaky(packed), cfg, cuda) - alone)[1:].abs().max()
    assert bool(calls) == (implementation == "varlen")
    tolerance = 0.15
    assert leak > 3 * tolerance, leak
    assert (together - alone).abs().max() < tolerance, (together, alone)
    assert (per_example(model, padded, cfg, cuda).detach() - alone).abs().max() < tolerance
    g_packed, g_padded = gradients(model, packed, cfg, cuda), gradients(model, padded, cfg, cuda)
    assert (g_packed - g_padded).norm() < 0.15 * g_padded.norm()  # 0.05 in bf16 on CPU


def test_varlen_refuses_attention_soft_capping_in_one_line(examples):
    """Gemma 2 soft-caps attention scores, which the variable-length kernel cannot: a wrong answer is not an option."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from pipeline.errors import UserError

    chosen, pad = examples
    config = Gemma2Config(vocab_size=4000, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=32, attn_logit_softcapping=50.0)
    model = Gemma2ForCausalLM(config)
    model.config._attn_implementation = attention.register()
    with pytest.raises(UserError, match="soft-capping"):
        token_logps(model, collate(chosen, True, pad))

