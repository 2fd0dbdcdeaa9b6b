"""The model card: what the model was trained from, so anyone holding the adapter can trace its data.

Provenance comes from the pipeline run that produced the shards: its manifest and stats (when the
shards came from `pipeline run`), the files read, row counts, and the contamination report if the
run wrote one. A card without provenance is how benchmark leaks go unnoticed.
"""

from __future__ import annotations

import json

from pipeline.storage import Location
from pipeline.train.config import FinetuneConfig


def _load_json(location: Location) -> dict | None:
    try:
        return json.loads(location.read_text())
    except (OSError, ValueError):
        return None


def contamination_reports(run_dir: Location) -> list[Location]:
    return [f for f in run_dir.files() if f.name.startswith("contamination") and f.suffix in {".html", ".json", ".md"}]


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
        f"- Pipeline run directory: `{run_dir}`",
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
    for phase, info in provenance.items():
        lines.append(f"- {phase}: {info['rows']} rows from {len(info['files'])} files "
                     f"({info['train']} train, {info['held_out']} held out, {info.get('truncated', 0)} truncated)")
        lines += [f"  - `{f}`" for f in info["files"][:20]]
    if reports:
        lines += ["- Contamination report(s): " + ", ".join(f"[{p.name}]({p})" for p in reports)]
    else:
        lines.append("- Contamination report: none found in the run directory; run `pipeline contamination-report` before evaluating.")
    lines += ["", "## Training", "", "```json", json.dumps(cfg.model_dump(), indent=2), "```", "", "## Results", ""]
    lines += [f"- {name}: {value}" for name, value in results.items()]
    lines += ["", "The chat template used in training is saved with the tokenizer in this directory; serve with it."]
    card = out / "README.md"
    card.write_text("\n".join(lines) + "\n")
    return card
