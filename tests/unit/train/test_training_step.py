"""The training step: one read of the device per logged step, fp16 loss scaling, and what a run logs."""

import json
import math
import resource
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from pipeline.train.data import ChatEncoder, MicroBatchOrder, PreferencePair, collate, token_logps
from pipeline.train.dpo import encode_pairs, train_dpo
from pipeline.train.loop import Updater
from pipeline.train.model import load_model, load_tokenizer, trainable_parameters
from pipeline.train.output import Output
from pipeline.train.run import seed_everything
from pipeline.train.sft import train_sft
from pipeline.train.tracking import TIMING_KEYS, Flops, peak_flops

CPU = torch.device("cpu")
TORCH = str(Path(torch.__file__).parent)
STEP_CODE = tuple(str(Path("pipeline") / "train" / name) for name in ("sft.py", "dpo.py", "loop.py"))


class HostReads(TorchDispatchMode):
    """Reads of tensor values back to the host (`.item()`, `bool()`, `float()`, `.tolist()`, `.numpy()`, copies
    from a GPU) and blocking copies to a GPU (which synchronise its stream) that the training step's own code
    makes, directly or through a torch function it calls.

    A read is attributed to the innermost frame outside torch; reads inside transformers' or the loss
    function's code (data.py) are not the step's. On a GPU each of these waits for the device to finish.
    """

    def __init__(self):
        super().__init__()
        self.sites: list[str] = []  # the step code's reads, by function
        self.elsewhere: list[str] = []  # everyone else's (transformers, the loss function), file:line

    def _record(self) -> None:
        frames = [f for f in traceback.extract_stack()[:-2] if not f.filename.startswith(TORCH) and f.filename != __file__]
        if frames and frames[-1].filename.endswith(STEP_CODE):
            self.sites.append(frames[-1].name)
        elif frames:
            self.elsewhere.append(f"{frames[-1].filename}:{frames[-1].lineno}")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self._record()
        elif func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            copy_ = func is torch.ops.aten.copy_.default
            source = args[1] if copy_ else args[0]
            target = args[0].device if copy_ else kwargs.get("device")
            blocking = not (args[2] if copy_ and len(args) > 2 else kwargs.get("non_blocking", False))
            if target is not None and (source.device.type == "cpu") != (torch.device(target).type == "cpu"):
                # From a GPU, a copy waits for the values; to a GPU, a blocking copy synchronises the stream.
                if source.device.type != "cpu" or blocking:
                    self._record()
        return func(*args, **kwargs)

    def __enter__(self):
        # tolist() and numpy() of a CPU tensor read its memory without passing through the dispatcher.
        self._originals = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
        for name, original in self._originals.items():
            def counted(tensor, *args, _original=original, **kwargs):
                self._record()
                return _original(tensor, *args, **kwargs)
            setattr(torch.Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)
        return super().__exit__(*exc)


def test_host_reads_counts_every_kind_of_read():
    """The counter itself: each way of reading a value from the step's code is seen (so a zero means none)."""
    t = torch.tensor([1.5, 2.0])
    with HostReads() as reads:
        t.sum().item(), bool(t[0] > 1), float(t[1]), t.tolist(), t.numpy()
    # This test file is not step code, so nothing is attributed; the same calls made from a step module are.
    assert reads.sites == []
    step_module = {"__name__": "pipeline.train.sft"}
    code = compile("t.sum().item(); bool(t[0] > 1); float(t[1]); t.tolist(); t.numpy()", STEP_CODE[0], "exec")
    with HostReads() as reads:
        exec(code, {**step_module, "t": t})
    assert len(reads.sites) == 5


@pytest.mark.slow
def test_sft_reads_the_device_once_per_logged_step_not_per_micro_batch(make_config, seed_chats, tmp_path):
    cfg = make_config(sft={"max_steps": 3, "micro_batch_size": 2, "grad_accum": 4, "max_grad_norm": 1.0})
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
    examples = [encoder.encode(c) for c in seed_chats[:32]]
    seed_everything(0)
    model = load_model(cfg)
    with HostReads() as reads:
        history = train_sft(model, tokenizer, examples, [], [], cfg, Output(tmp_path))
    # 12 micro batches, 3 logged steps: one read each, of all the step's metrics at once.
    assert reads.sites == ["read_metrics"] * 3
    assert [h["step"] for h in history] == [1, 2, 3]

    # The counts it logs come from the encoded examples, not the device: every non-padding input token.
    order = MicroBatchOrder(len(examples), 2, cfg.seed)
    for h in history:
        step_examples = [examples[i] for k in range(4) for i in order((h["step"] - 1) * 4 + k)]
        assert h["tokens"] == sum(len(e.input_ids) for e in step_examples)
        assert h["target_tokens"] == sum(e.n_targets for e in step_examples)


@pytest.mark.slow
@pytest.mark.parametrize("reference", ["precomputed", "adapter_disabled"])  # before training / in every micro batch
def test_dpo_reads_the_device_once_per_logged_step_not_per_micro_batch(make_config, seed_chats, tmp_path, reference):
    cfg = make_config(skip_sft=True, dpo={"enabled": True, "max_steps": 2, "micro_batch_size": 2, "grad_accum": 3,
                                         "max_grad_norm": 1.0, "max_seq_len": 96, "reference": reference})
    tokenizer = load_tokenizer(cfg)
    refusal = [{"role": "assistant", "content": "I will not help with that."}]
    pairs = encode_pairs(ChatEncoder(tokenizer, 96), [PreferencePair(c[:1], c[1:], refusal) for c in seed_chats[:16]])
    seed_everything(0)
    model = load_model(cfg)
    with HostReads() as reads:
        history = train_dpo(model, tokenizer, pairs, [], cfg, Output(tmp_path))
    assert reads.sites == ["read_metrics"] * 2
    assert {"loss", "reward_accuracy", "margin", "chosen_logps", "rejected_logps", "grad_norm"} <= set(history[-1])


def test_fp16_overflow_skips_the_step_and_halves_the_loss_scale(make_config, seed_chats):
    cfg = make_config()
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
    batch = collate([encoder.encode(c) for c in seed_chats[:4]], True, tokenizer.pad_token_id)
    seed_everything(0)
    model = load_model(cfg)
    params = trainable_parameters(model)
    # GradScaler's logic is the same on every device; torch runs it on the CPU too.
    updater = Updater(params, 1e-2, 0.0, 1.0, 10, 0.0, "constant", "fp16", CPU)
    assert updater.loss_scaling and updater.scaler.get_scale() == 2.0**16

    def step(loss_factor: float) -> float:
        updater.backward(-token_logps(model, batch).sum() * loss_factor)
        grad_norm, scale = updater.step().tolist()  # with loss scaling, the next step's scale comes along
        assert scale == updater.scaler.get_scale()
        return grad_norm

    before = [p.detach().clone() for p in params]
    # Gradients that overflow once scaled, as fp16 activation gradients do while the scale is too high.
    assert not math.isfinite(step(1e35))
    assert all(torch.equal(p, b) for p, b in zip(params, before)), "an overflowed step changed the weights"
    assert updater.scaler.get_scale() == 2.0**15
    assert all(updater.optimizer.state[p]["step"].item() == 0 for p in params)

    norm = step(1 / batch.n_targets)  # a normal step now goes through, unscaled before clipping
    assert 0 < norm < 1e3
    assert any(not torch.equal(p, b) for p, b in zip(params, before))
    assert updater.scaler.get_scale() == 2.0**15
    assert all(updater.optimizer.state[p]["step"].item() == 1 for p in params)

    # The scale travels with a checkpoint, so a resumed run does not start over at 2^16.
    resumed = Updater(params, 1e-2, 0.0, 1.0, 10, 0.0, "constant", "fp16", CPU)
    resumed.load_state_dict(updater.state_dict())
    assert resumed.scaler.get_scale() == 2.0**15


def _first_layer_input_projections(model) -> int:
    """Weights of the first layer's q/k/v projections (LoRA's A included): their input is the frozen embedding,
    so under LoRA autograd skips the gradient of their input that the formula counts."""
    return sum(m.in_features * m.out_features for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and ".layers.0.self_attn." in name
               and any(f"{p}_proj" in name for p in "qkv") and "lora_B" not in name)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_flops_formula_equals_the_matmuls_of_a_training_step(make_config, seed_chats, method):
    cfg = make_config(method=method, attention="eager")  # eager: attention as plain matmuls a counter sees
    tokenizer = load_tokenizer(cfg)
    example = ChatEncoder(tokenizer, cfg.sft.max_seq_len).encode(seed_chats[3])
    n, targets = len(example.input_ids), example.n_targets
    seed_everything(0)
    model = load_model(cfg)
    batch = collate([example], True, tokenizer.pad_token_id)
    with FlopCounterMode(display=False) as counter:
        (-token_logps(model, batch).sum()).backward()
    flops = Flops.of(model)
    skipped = 0 if method == "full" else 2 * n * _first_layer_input_projections(model)
    assert counter.get_total_flops() == flops.train(n, targets, n * n) - skipped

    if method == "lora":  # DPO's reference: a forward pass with the adapter off
        with torch.no_grad(), model.disable_adapter(), FlopCounterMode(display=False) as counter:
            token_logps(model, batch)
        assert counter.get_total_flops() == flops.frozen_forward(n, targets, n * n)


def test_peak_flops_by_device_name(monkeypatch):
    gpu = torch.device("cuda")
    expected = {"NVIDIA H200": 989e12, "NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100 PCIe": 756e12,
                "NVIDIA H100 NVL": 835e12, "NVIDIA A100-SXM4-80GB": 312e12, "NVIDIA A100 80GB PCIe": 312e12,
                "NVIDIA L4": 121e12, "NVIDIA L40S": None, "Tesla T4": 65e12, "Tesla V100-SXM2-16GB": 125e12,
                "NVIDIA GeForce RTX 3090": None}
    for name, flops in expected.items():
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert peak_flops(gpu, "bf16") == flops, name
    assert peak_flops(gpu, "fp32") is None and peak_flops(CPU, "bf16") is None


@pytest.mark.slow
def test_a_run_logs_its_speed_memory_and_wall_time(make_config, seed_chats, tmp_path):
    cfg = make_config(sft={"max_steps": 3, "micro_batch_size": 3, "grad_accum": 1, "packing": False})
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
    examples = [encoder.encode(c) for c in seed_chats[:12]]
    seed_everything(0)
    history = train_sft(load_model(cfg), tokenizer, examples, [], [], cfg, Output(tmp_path))
    logged = [json.loads(line) for line in (tmp_path / "logs" / "sft.jsonl").read_text().splitlines()]
    assert logged == history
    order = MicroBatchOrder(len(examples), 3, cfg.seed)
    for h in history:
        batch = [examples[i] for i in order(h["step"] - 1)]
        # Padded rows: the tokens trained are the examples' own, not the padding up to the longest.
        assert h["tokens"] == sum(len(e.input_ids) for e in batch) < 3 * max(len(e.input_ids) for e in batch)
        assert h["mfu"] is None and h["mean_mfu"] is None  # on a CPU there is no peak to compare with
    assert 0 < history[0]["wall_s"] < history[1]["wall_s"] < history[2]["wall_s"]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 0 < history[-1]["peak_mem_mb"] <= peak_rss_mb
    assert TIMING_KEYS <= set(history[-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_on_a_gpu_one_read_per_step_loss_scaling_and_mfu(make_config, seed_chats, tmp_path, precision):
    cfg = make_config(use_gpu=True, precision=precision, sft={"max_steps": 3, "micro_batch_size": 2, "grad_accum": 4,
                                                              "max_grad_norm": 1.0})
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
    examples = [encoder.encode(c) for c in seed_chats[:32]]
    seed_everything(0)
    model = load_model(cfg)
    assert next(model.parameters()).device.type == "cuda"
    with HostReads() as reads:
        history = train_sft(model, tokenizer, examples, [], [], cfg, Output(tmp_path))
    print(f"{precision}: reads outside the step code: {sorted(set(reads.elsewhere))}")
    assert reads.sites == ["read_metrics"] * 3
    assert all(math.isfinite(h["loss"]) for h in history)
    assert all(0 < h["mfu"] < 1 and 0 < h["mean_mfu"] < 1 for h in history), "no MFU: is this GPU in PEAK_FLOPS?"
    assert 0 < history[-1]["peak_mem_mb"] <= torch.cuda.max_memory_allocated() / 2**20
    if precision == "fp16":
        assert {"loss_scale", "skipped_steps"} <= set(history[-1])
        # Skipped steps halve the scale from 2^16; clean steps leave it (growth comes after 2000).
        assert history[-1]["loss_scale"] == 2.0**16 / 2 ** history[-1]["skipped_steps"]
