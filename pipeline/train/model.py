"""Load the base model and tokenizer, and make the part that trains: a peft LoRA adapter, QLoRA, or everything."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from pipeline import storage
from pipeline.errors import UserError
from pipeline.train.config import FinetuneConfig


def device_for(cfg: FinetuneConfig) -> torch.device:
    return torch.device("cuda") if (cfg.use_gpu or cfg.method == "qlora") and torch.cuda.is_available() else torch.device("cpu")


def autocast(cfg: FinetuneConfig, device: torch.device):
    """bf16 autocast where it pays: on GPUs that support it (CPU bf16 autocast is slow without AMX)."""
    want = cfg.precision == "bf16" or (
        cfg.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if want else contextlib.nullcontext()


def is_uri(model: str) -> bool:
    """A model in object storage (`s3://...`), as opposed to a local path or a Hugging Face id."""
    return "://" in model


@contextlib.contextmanager
def local_model(model: str) -> Iterator[str]:
    """What transformers can load: a local path or Hub id as it is; a model in object storage
    downloaded once, into a temporary folder that lasts as long as the block."""
    if not is_uri(model):
        yield model
        return
    with contextlib.ExitStack() as stack:
        try:
            path = stack.enter_context(storage.local_copy(model))
        except OSError as e:
            raise UserError(f"cannot download the model {model}: {storage.first_line(e)}") from None
        yield str(path)


def load_tokenizer(cfg: FinetuneConfig, source: str | None = None):
    """The tokenizer of `cfg.model`, read from `source` when the model was copied there."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source or cfg.model)
    except OSError as e:
        raise UserError(f"cannot load a tokenizer from {cfg.model!r}: {str(e).splitlines()[0]}") from None
    if cfg.chat_template:
        tokenizer.chat_template = cfg.chat_template
    return tokenizer


def load_model(cfg: FinetuneConfig, adapter: str | None = None, source: str | None = None):
    """The base model ready to train: frozen with a fresh (or given) LoRA adapter, or fully trainable;
    read from `source` when the model was copied there."""
    from transformers import AutoModelForCausalLM

    device = device_for(cfg)
    kwargs: dict = {"dtype": torch.float32}
    if cfg.method == "qlora":
        kwargs = _qlora_kwargs()
    try:
        model = AutoModelForCausalLM.from_pretrained(source or cfg.model, **kwargs)
    except OSError as e:
        raise UserError(f"cannot load a model from {cfg.model!r}: {str(e).splitlines()[0]}") from None
    if cfg.method != "qlora":
        model.to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.method == "full":
        return model
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    if adapter:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True)
    lora = LoraConfig(
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        use_rslora=cfg.lora.rslora,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _qlora_kwargs() -> dict:
    if not torch.cuda.is_available():
        raise UserError("method: qlora needs a CUDA GPU (4-bit kernels); use method: lora on this machine")
    try:
        from transformers import BitsAndBytesConfig
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("method: qlora needs bitsandbytes: pip install bitsandbytes") from None
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    # Each Ray Train worker loads onto its own GPU (Ray Train made it the current device).
    return {"quantization_config": quant, "dtype": torch.bfloat16, "device_map": {"": torch.cuda.current_device()}}


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
