"""`pipeline eval MODEL [--adapter DIR] [--against BASE] --tasks ...`: base against fine-tuned, on benchmarks
through lm-evaluation-harness, on the run's held-out prompts, and by a judge, with contamination beside.

The flags are `EvalSection`'s fields (the `finetune: {eval: ...}` section), so both paths read one
validated model. Output: `eval.json` and `eval.md` in `--out` (default: beside the adapter, `eval/`).
"""

from __future__ import annotations

# flag -> EvalSection field
FLAGS = {"tasks": "tasks", "benchmarks_dir": "benchmarks_dir", "limit": "limit", "batch_size": "batch_size",
         "max_new_tokens": "max_new_tokens", "prompts": "prompts"}


def register(sub) -> None:
    p = sub.add_parser("eval", help="base against fine-tuned on benchmarks (lm-eval), held-out prompts and a judge")
    p.add_argument("model", help="the base model (a local path or Hugging Face id), or the model to evaluate")
    p.add_argument("--adapter", help="a LoRA adapter (pipeline finetune's OUTPUT/finetune/adapter): tuned = MODEL + adapter")
    p.add_argument("--against", help="the model to compare with (default: MODEL itself, when --adapter is given)")
    p.add_argument("--tasks", type=lambda s: [t.strip() for t in s.split(",") if t.strip()],
                   help="comma-separated: held_out, gsm8k, mmlu (local copies) or lm-eval task names (default held_out)")
    p.add_argument("--benchmarks-dir", help="local benchmark copies (gsm8k/, mmlu/ as decontaminate reads them)")
    p.add_argument("--limit", type=int, help="the first N items of each task")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-new-tokens", type=int, help="longest answer to a held-out prompt")
    p.add_argument("--prompts", help="a JSONL/Parquet file of prompts instead of the fine-tune's held-out split")
    p.add_argument("--judge-config", help="a YAML file whose finetune.eval.judge (or llms.judge) entry is the judge LLM")
    p.add_argument("--vllm-url", help="score through this vLLM server (http://host:port/v1) instead of loading the models: "
                   "the base by its served name, the tuned model by the LoRA it serves from --adapter "
                   "(vllm serve MODEL --enable-lora --lora-modules NAME=ADAPTER)")
    p.add_argument("--out", help="where eval.json and eval.md go (default: ADAPTER/../eval)")
    p.set_defaults(func=main)


def main(args) -> int:
    from pipeline import storage
    from pipeline.errors import UserError
    from pipeline.evaluate.run import evaluate

    settings = build_settings(args)
    if args.out:
        out = storage.locate(args.out)
    elif args.adapter:
        out = storage.locate(args.adapter).parent / "eval"
    else:
        raise UserError("eval: give --out (without --adapter there is no default place)")
    if not out.is_local:
        raise UserError(f"eval: --out must be a local folder (lm-eval reads its task configs from disk): {out}")
    out = out.local_path()
    result = evaluate(settings, args.model, out, adapter=args.adapter, against=args.against, vllm_url=args.vllm_url)
    print((out / "eval.md").read_text(), end="")
    print(f"eval: {len(result['tasks'])} tasks; eval.json and eval.md in {out}")
    return 0


def build_settings(args):
    """The validated EvalSection from the flags (and the judge of --judge-config)."""
    from pydantic import ValidationError

    from pipeline import yaml_source
    from pipeline.errors import UserError
    from pipeline.train.config import EvalSection

    section = {field: getattr(args, flag) for flag, field in FLAGS.items() if getattr(args, flag) is not None}
    if args.judge_config:
        data = yaml_source.load(args.judge_config).data
        judge = ((data.get("finetune") or {}).get("eval") or {}).get("judge") or (data.get("llms") or {}).get("judge")
        if not judge:
            raise UserError(f"eval: {args.judge_config} has no finetune.eval.judge or llms.judge entry")
        section["judge"] = judge
    try:
        return EvalSection.model_validate(section)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"eval: {where}: {first['msg']}") from None
