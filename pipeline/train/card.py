"""The model card: what the model was trained from, so anyone holding the adapter can trace its data.

Provenance comes from the pipeline run that produced the shards: its manifest and stats (when the
shards came from `pipeline run`), the files read, row counts, and the contamination report if the
run wrote one. A card without provenance is how benchmark leaks go unnoticed.
"""

from __future__ import annotations

import json
import re

from pipeline.storage import Location
from pipeline.train.config import FinetuneConfig


def _load_json(location: Location) -> dict | None:
    try:
        return json.loads(location.read_text())
    except (OSError, ValueError):
        return None


def contamination_reports(run_dir: Location) -> list[Location]:
    return [f for f in run_dir.files() if f.name.startswith("contamination") and f.suffix in {".html", ".json", ".md"}]


RUN_DIR_LINE = "- Pipeline run directory: "
EVALUATION = "## Evaluation"

# The run-tracking figures of each phase's last log line (pipeline/train/tracking.py), as the card words them.
TRACKING = {"wall_s": "wall time {:,.1f} s", "mean_tokens_per_s": "{:,.0f} tokens/s", "peak_mem_mb": "peak memory {:,.0f} MiB",
            "mean_mfu": "MFU {:.1%}"}
_TRACKED = tuple(f"_{key}" for key in TRACKING)


def _tracking_lines(results: dict) -> list[str]:
    lines = []
    for phase in ("sft", "dpo"):
        parts = [text.format(results[f"{phase}_{key}"]) for key, text in TRACKING.items()
                 if results.get(f"{phase}_{key}") is not None]
        if parts:
            lines.append(f"- {phase}: " + ", ".join(parts))
    return lines


def _data_lines(kind: str, info: dict) -> list[str]:
    """Where one kind of training data came from, how it was split, and (documents) how it was trained."""
    lines = [f"- {kind}: {info['rows']} rows from {len(info['files'])} files ({info['train']} train, "
             f"{info['held_out']} held out" + (f", {info['truncated']} truncated" if "truncated" in info else "")
             + (f", {info['left_out']} left out: cut before an answer" if info.get("left_out") else "") + ")"]
    if "train_families" in info:
        lines.append(f"  - held out by lineage: {info['train_families']} families train, {info['held_out_families']} "
                     "held out; rows sharing an origin, a parent chain, a Self-Instruct task, a copy or a prompt "
                     "(documents: a text or a near-duplicate cluster) are never on both sides")
    if "objective" in info:
        lines.append(f"  - objective: {info['objective']}; {info['windows']} training windows of up to "
                     f"{info['max_seq_len']} tokens (long documents are cut into windows, not truncated)")
        if info["instruction_target_tokens"]:
            asked = info["asked_token_ratio"]
            lines.append(f"  - mixed with instructions: documents are {info['token_share']:.1%} of the SFT target tokens "
                         f"({info['document_target_tokens']} of {info['document_target_tokens'] + info['instruction_target_tokens']}"
                         + (f", asked {asked:.1%}" if asked is not None else ", every document once")
                         + f"), the documents seen {info['passes']}x per epoch")
    lines += [f"  - `{f}`" for f in info["files"][:20]]
    return lines


def write_model_card(out: Location, cfg: FinetuneConfig, run_dir: Location, provenance: dict, results: dict) -> Location:
    """README.md next to the adapter, with a YAML header the Hub and peft understand; on any storage."""
    manifest = _load_json(run_dir / "manifest.json")
    stats = _load_json(run_dir / "stats.json")
    reports = contamination_reports(run_dir)
    lines = [
        "---",
        f"base_model: {cfg.model}",
        "library_name: peft" if cfg.method != "full" else "library_name: transformers",
        "tags: [instruct-pipeline, " + ("dpo, " if cfg.dpo.enabled else "") + ("sft" if not cfg.skip_sft else "") + "]",
        "---",
        "",
        f"# Fine-tune of `{cfg.model}`",
        "",
        f"Method: {cfg.method}" + (f" (LoRA r={cfg.lora.rank}, alpha={cfg.lora.alpha}, rsLoRA={cfg.lora.rslora}, "
                                   f"targets={cfg.lora.target_modules})" if cfg.method != "full" else ""),
        "",
        "## Data provenance",
        "",
        f"{RUN_DIR_LINE}`{run_dir}`",
    ]
    if manifest:
        keys = ("name", "created", "pipeline_version", "rows")
        lines += [f"- Run manifest: `{run_dir / 'manifest.json'}`"]
        lines += [f"  - {k}: `{manifest[k]}`" for k in keys if k in manifest and not isinstance(manifest[k], (dict, list))]
    else:
        lines.append("- No run manifest found (shards not produced by `pipeline run`, or moved).")
    if stats:
        stages = " -> ".join(s.get("id", "?") for s in stats.get("stages", []))
        lines.append(f"- Run statistics: `{run_dir / 'stats.json'}`: {stats.get('rows_out', '?')} rows out of stages {stages}")
    for kind, info in provenance.items():
        if isinstance(info, dict):
            lines += _data_lines(kind, info)
    if provenance.get("skipped_rows"):
        lines.append(f"- skipped: {provenance['skipped_rows']} rows with neither `messages` nor `text`")
    if reports:
        lines += ["- Contamination report(s): " + ", ".join(f"[{p.name}]({p})" for p in reports)]
    else:
        lines.append("- Contamination report: none found in the run directory; run `pipeline contamination-report` before evaluating.")
    lines += ["", "## Training", "", "```json", json.dumps(cfg.model_dump(), indent=2), "```", "", "## Results", ""]
    lines += [f"- {name}: {value}" for name, value in results.items() if not name.endswith(_TRACKED)]
    tracking = _tracking_lines(results)
    if tracking:
        lines += ["", "## Run tracking", "", *tracking, "",
                  "Tokens/s counts input tokens over training time alone (evals, samples and checkpoints excluded); peak "
                  "memory is `torch.cuda.max_memory_allocated` on a GPU, the process's peak resident memory on a CPU; "
                  "MFU is model FLOPs over the GPU's 16-bit peak (not measured on CPUs)."]
    lines += ["", "The chat template used in training is saved with the tokenizer in this directory; serve with it."]
    card = out / "README.md"
    card.write_text("\n".join(lines) + "\n")
    return card


def trained_from(card_text: str) -> tuple[str | None, dict | None]:
    """The run directory and the finetune settings a card was written with: `pipeline eval` finds the
    held-out split and the run's statistics of an adapter through them."""
    run = re.search("^" + re.escape(RUN_DIR_LINE) + r"`(.*)`$", card_text, re.MULTILINE)
    settings = re.search(r"^## Training\n\n```json\n(.*?)\n```$", card_text, re.MULTILINE | re.DOTALL)
    try:
        config = json.loads(settings.group(1)) if settings else None
    except ValueError:
        config = None
    return (run.group(1) if run else None), config


def add_evaluation(card: Location, markdown: str) -> None:
    """Put an eval's table in the card (replacing an earlier one), before the closing note on the chat template."""
    text = card.read_text()
    text = re.sub(r"\n" + EVALUATION + r"\n.*?(?=\n## |\nThe chat template used|\Z)", "", text, flags=re.DOTALL)
    section = f"\n{EVALUATION}\n\n{markdown.strip()}\n"
    closing = "\nThe chat template used"
    text = text.replace(closing, section + closing, 1) if closing in text else text + section
    card.write_text(text)
