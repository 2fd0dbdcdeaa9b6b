"""`pipeline finetune OUTPUT_DIR --model M [--dpo]`: LoRA SFT (then DPO) on a run's shards in one command.

Settings come from, in order of precedence: flags and `--set finetune.KEY=VALUE`, the `finetune:` section
of `--config`, and the `finetune:` section of the config that produced OUTPUT_DIR (its manifest).

OUTPUT_DIR, `--out`, `--model`, `--data` and `--preferences` may be local paths or object-storage URIs;
each is checked (the run there, the model there, the output writable) before any model is loaded.
"""

from __future__ import annotations

import json

# flag -> key path in the finetune section
FLAGS = {
    "model": ("model",),
    "method": ("method",),
    "rank": ("lora", "rank"),
    "alpha": ("lora", "alpha"),
    "dropout": ("lora", "dropout"),
    "epochs": ("sft", "epochs"),
    "max_steps": ("sft", "max_steps"),
    "batch_size": ("sft", "micro_batch_size"),
    "grad_accum": ("sft", "grad_accum"),
    "lr": ("sft", "learning_rate"),
    "max_seq_len": ("sft", "max_seq_len"),
    "dpo_loss": ("dpo", "loss"),
    "beta": ("dpo", "beta"),
    "dpo_steps": ("dpo", "max_steps"),
    "data": ("data",),
    "preferences": ("preferences",),
    "documents": ("documents",),
    "document_token_ratio": ("document_token_ratio",),
    "out": ("output",),
    "workers": ("num_workers",),
    "seed": ("seed",),
}
SWITCHES = {  # store_true flag -> (key path, value)
    "dpo": (("dpo", "enabled"), True),
    "skip_sft": (("skip_sft",), True),
    "rslora": (("lora", "rslora"), True),
    "merge": (("merge",), True),
    "gradient_checkpointing": (("gradient_checkpointing",), True),
    "no_packing": (("sft", "packing"), False),
    "no_resume": (("resume",), False),
    "gpu": (("use_gpu",), True),
}


def register(sub) -> None:
    p = sub.add_parser("finetune", help="LoRA SFT (then DPO) on a run's instruction and preference shards")
    p.add_argument("output_dir", help="the run's output directory (shards in data/, preferences in preferences/): a path or URI")
    p.add_argument("--model", help="base model: local path, URI (s3://...) or Hugging Face id")
    p.add_argument("--config", help="a YAML file whose finetune: section to use")
    p.add_argument("--dpo", action="store_true", help="run DPO on the preference shards after SFT")
    p.add_argument("--skip-sft", action="store_true", help="DPO only (the base is already instruction-tuned)")
    p.add_argument("--method", choices=["lora", "qlora", "full"])
    p.add_argument("--rank", type=int)
    p.add_argument("--alpha", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--rslora", action="store_true")
    p.add_argument("--epochs", type=float)
    p.add_argument("--max-steps", type=int, help="SFT optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, help="SFT examples per micro batch")
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--lr", type=float, help="SFT learning rate")
    p.add_argument("--max-seq-len", type=int, help="SFT sequence limit (DPO: --set dpo.max_seq_len=N)")
    p.add_argument("--no-packing", action="store_true")
    p.add_argument("--dpo-loss", choices=["sigmoid", "ipo", "hinge"])
    p.add_argument("--beta", type=float)
    p.add_argument("--dpo-steps", type=int)
    p.add_argument("--data", nargs="+", help="instruction files/globs instead of OUTPUT_DIR/data")
    p.add_argument("--preferences", nargs="+", help="preference files/globs instead of OUTPUT_DIR/preferences")
    p.add_argument("--documents", nargs="+", help="document files/globs (text, no messages) to train with the language-modelling objective")
    p.add_argument("--document-token-ratio", type=float, help="share of the target tokens that come from --documents when mixed with instructions")
    p.add_argument("--chat-template", help="a file holding a Jinja chat template to use (and save) instead of the tokenizer's")
    p.add_argument("--merge", action="store_true", help="also save the base with the adapter merged in")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--out", help="where to write (default OUTPUT_DIR/finetune)")
    p.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    p.add_argument("--workers", type=int, help="Ray Train workers: one per GPU with --gpu, else one per CPU")
    p.add_argument("--gpu", action="store_true", help="train on CUDA GPUs")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="set any finetune option, e.g. --set sft.warmup_ratio=0.1 (repeatable)")
    p.set_defaults(func=main, resumes=True)  # from its checkpoints: said when it is interrupted


def main(args) -> int:
    from pipeline import run_lock, storage
    from pipeline.errors import UserError
    from pipeline.train.ray_train import finetune_anywhere
    from pipeline.train.run import output_dir

    run_dir = storage.locate(args.output_dir)
    try:
        found = run_dir.is_dir()
    except OSError as e:  # a missing bucket, no credentials, an unreachable store
        raise UserError(f"output directory {run_dir}: {storage.first_line(e)}") from None
    if not found:
        raise UserError(f"output directory not found: {run_dir}")
    cfg = build_config(args, run_dir)
    if cfg.num_workers == 1:  # one process, this one (several: Ray places them on nodes with what they ask for)
        from pipeline.train.model import device_for

        device_for(cfg)
    _check_model(cfg.model)
    out = output_dir(cfg, run_dir)
    why = storage.probe_writable(out)
    if why:
        raise UserError(f"cannot write the fine-tune's output to {out}: {why}")
    if cfg.eval.enabled:
        from pipeline.evaluate.run import preflight

        preflight(cfg.eval, out)  # a remote output, a bad task or an unreachable benchmark fail now, not after training
    with run_lock.held(out, f"pipeline finetune {args.output_dir}"):
        out = finetune_anywhere(cfg, run_dir)
        print(f"finetune: adapter and model card in {out / 'adapter'}; logs in {out / 'logs'}")
        if cfg.eval.enabled:
            from pipeline.evaluate.run import after_finetune

            after_finetune(cfg, run_dir, out)
            print(f"finetune: evaluation in {out / 'eval'} and in the model card")
    return 0


def _check_model(model: str) -> None:
    """The base model can be loaded: a folder in the store is there; offline, a Hub id is in the cache
    (one quick line instead of a minute of retries inside transformers)."""
    from pipeline import hub, storage
    from pipeline.errors import UserError
    from pipeline.train.model import is_uri

    if is_uri(model):
        why = storage.file_problem(model, folder=True)
        if why:
            raise UserError(f"model: {why}")
        return
    why = hub.local_or_hub_problem(model, "model")
    if why:
        raise UserError(f"model {model}: {why}; give the path of a local copy of the model (--model)")


def build_config(args, run_dir):
    """The validated FinetuneConfig from the run's config, --config, flags and --set, in rising precedence."""
    from pydantic import ValidationError

    from pipeline import storage, yaml_source
    from pipeline.config import _describe, apply_override
    from pipeline.errors import UserError
    from pipeline.train.config import FinetuneConfig

    located = yaml_source.Located({"finetune": _run_section(run_dir)}, {}, str(run_dir / "manifest.json"))
    if args.config:
        located = yaml_source.load(args.config)
        located.data = {"finetune": located.data.get("finetune") or {}}
    section = located.data["finetune"]
    for flag, path in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            _set(section, path, value)
            located.lines[("finetune", *path)] = f"--{flag.replace('_', '-')}"
            located.forget(("finetune", *path))
    for flag, (path, value) in SWITCHES.items():
        if getattr(args, flag):
            _set(section, path, value)
            located.lines[("finetune", *path)] = f"--{flag.replace('_', '-')}"
            located.forget(("finetune", *path))
    if args.chat_template:
        try:
            section["chat_template"] = storage.locate(args.chat_template).read_text()
        except OSError as e:
            raise UserError(f"--chat-template: cannot read {args.chat_template}: {storage.first_line(e)}") from None
    for item in args.overrides:
        apply_override(located, item if item.startswith("finetune.") else f"finetune.{item}")
    unset = [located.unset_problem(path) for path in located.unset if path[0] == "finetune"]
    if unset:
        raise UserError("\n".join(unset))
    try:
        return FinetuneConfig.model_validate(located.data["finetune"])
    except ValidationError as e:
        raise UserError(_describe(e, located, ("finetune",), FinetuneConfig)) from None


def _run_section(run_dir) -> dict:
    """The finetune: section of the config that produced the run, if its manifest kept one."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return dict((manifest.get("config") or {}).get("finetune") or {})


def _set(section: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        section = section.setdefault(key, {})
    section[path[-1]] = value
