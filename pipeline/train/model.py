"""Load the base model and tokenizer, and make the part that trains: a peft LoRA adapter, QLoRA, or everything."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Iterator, Literal

import torch

from pipeline import hub, storage
from pipeline.errors import UserError
from pipeline.train import attention
from pipeline.train.config import FinetuneConfig


def device_for(cfg: FinetuneConfig) -> torch.device:
    """CUDA when asked for and there; asked for and not there is an error, not hours of training on the CPU."""
    if cfg.use_gpu and not torch.cuda.is_available():
        why = ("a build without CUDA: install a CUDA build of torch" if torch.version.cuda is None else
               f"built for CUDA {torch.version.cuda}, but no device is visible: check the driver (nvidia-smi) "
               "and CUDA_VISIBLE_DEVICES")
        raise UserError(f"--gpu: torch {torch.__version__} sees no CUDA GPU here ({why}); leave --gpu out to "
                        "train on the CPU")
    return torch.device("cuda") if (cfg.use_gpu or cfg.method == "qlora") and torch.cuda.is_available() else torch.device("cpu")


Precision = Literal["bf16", "fp16", "fp32"]
DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _bf16_gpu() -> bool:
    """Native bf16 only: V100s and T4s 'support' it by emulation, slower than fp32."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(cfg: FinetuneConfig, device: torch.device) -> Precision:
    """The dtype the frozen weights are held in and the matmuls run in (trainable LoRA weights stay fp32).

    auto: bf16 on GPUs with native bf16, fp16 on older GPUs (the step needs dynamic loss scaling then),
    fp32 on CPU, where 16-bit matmuls are slower without AMX. Full fine-tuning never picks fp16 by itself:
    without fp32 master weights, fp16 updates round away (the config refuses an explicit fp16 there).
    """
    if cfg.precision == "auto":
        if device.type != "cuda":
            return "fp32"
        if _bf16_gpu():
            return "bf16"
        return "fp32" if cfg.method == "full" else "fp16"
    if cfg.precision == "fp16" and device.type != "cuda":
        raise UserError("precision: fp16 needs a CUDA GPU; use bf16 or fp32 on this machine")
    if cfg.precision == "bf16" and device.type == "cuda" and not _bf16_gpu():
        raise UserError(f"precision: bf16 is not native on {torch.cuda.get_device_name(device)}; use fp16 or auto")
    return cfg.precision


def autocast(cfg: FinetuneConfig, device: torch.device):
    """Matmuls in the 16-bit dtype, so fp32 LoRA weights meet 16-bit frozen weights without fp32 matmuls."""
    precision = resolve_precision(cfg, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def _flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def resolve_attention(cfg: FinetuneConfig, device: torch.device, precision: Precision) -> str:
    """The `attn_implementation` to load the model with. On a GPU with 16-bit weights, packed rows should
    reach a variable-length kernel (flash_attention_2, else torch's own through `attention.VARLEN`):
    sdpa and eager keep a packed row's examples apart with a dense [tokens, tokens] mask instead."""
    fast = device.type == "cuda" and precision != "fp32"
    choice = cfg.attention
    if choice == "auto":
        choice = ("flash_attention_2" if _flash_attn_installed() else "varlen") if fast else "sdpa"
    if choice == "flash_attention_2":
        if not fast:
            raise UserError("attention: flash_attention_2 needs a CUDA GPU and precision bf16 or fp16")
        if not _flash_attn_installed():
            raise UserError("attention: flash_attention_2 needs the flash-attn package: pip install flash-attn")
    if choice == "varlen":
        if device.type == "cuda" and not fast:
            raise UserError("attention: varlen needs precision bf16 or fp16 on a GPU (flash kernels are 16-bit)")
        if device.type == "cuda" and not attention.available():
            raise UserError("attention: varlen needs torch >= 2.10 (torch.nn.attention.varlen); use sdpa")
        return attention.register()
    return choice


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

    if Path(source or cfg.model).is_dir():
        why = hub.tokenizer_problem(source or cfg.model)
        if why:
            raise UserError(f"cannot load a tokenizer from {cfg.model!r}: {why}; copy them from the model's source")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source or cfg.model)
    except (OSError, ValueError) as e:  # ValueError: files there that no installed tokenizer class reads
        raise UserError(f"cannot load a tokenizer from {cfg.model!r}: {str(e).strip().splitlines()[0]}") from None
    if cfg.chat_template:
        tokenizer.chat_template = cfg.chat_template
    return tokenizer


def load_model(cfg: FinetuneConfig, adapter: str | None = None, source: str | None = None):
    """The base model ready to train: frozen with a fresh (or given) LoRA adapter, or fully trainable;
    read from `source` when the model was copied there."""
    from transformers import AutoModelForCausalLM

    device = device_for(cfg)
    precision = resolve_precision(cfg, device)
    kwargs: dict = {"dtype": DTYPES[precision]}
    if cfg.method == "qlora":
        kwargs = _qlora_kwargs(DTYPES[precision])
    kwargs["attn_implementation"] = resolve_attention(cfg, device, precision)
    try:
        model = AutoModelForCausalLM.from_pretrained(source or cfg.model, **kwargs)
    except OSError as e:
        raise UserError(f"cannot load a model from {cfg.model!r}: {str(e).splitlines()[0]}") from None
    if cfg.method != "qlora":
        model.to(device)
    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # its name since transformers 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.method == "full":
        return model
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    if adapter:
        return _fp32_trainable(PeftModel.from_pretrained(model, adapter, is_trainable=True))
    lora = LoraConfig(
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        use_rslora=cfg.lora.rslora,
        task_type="CAUSAL_LM",
    )
    return _fp32_trainable(get_peft_model(model, lora))


def _fp32_trainable(model):
    """LoRA weights in fp32 beside 16-bit frozen weights: their updates (and the optimizer state, which
    takes their dtype) would round away in 16 bits; autocast runs their matmuls in 16-bit anyway."""
    for p in trainable_parameters(model):
        p.data = p.data.float()
    return model


def _qlora_kwargs(compute_dtype: torch.dtype) -> dict:
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
        bnb_4bit_compute_dtype=compute_dtype,
    )
    # Each Ray Train worker loads onto its own GPU (Ray Train made it the current device).
    return {"quantization_config": quant, "dtype": compute_dtype, "device_map": {"": torch.cuda.current_device()}}


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
