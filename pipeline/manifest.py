"""What a run writes beside its shards to describe them: the manifest and the dataset card.

The dataset card carries the YAML header that makes `datasets.load_dataset(OUTPUT_DIR)` find
the shards. Shards and rejects themselves are written by `sinks.RoutingSink`, which also measured
them (rows, bytes, sha256) as they were written: the manifest reads nothing back.
"""

from __future__ import annotations

import json

from pipeline.sinks import WrittenFile
from pipeline.storage import Location


def schema_of(written: dict[str, list[tuple[str, WrittenFile]]]) -> list[str]:
    """Column names of the output, as its first shard has them."""
    for fmt in ("parquet", "jsonl"):
        for _, f in written.get(fmt, [])[:1]:
            return list(f.columns) if f.rows or fmt == "parquet" else []
    return []


def file_entry(path: str, f: WrittenFile) -> dict:
    return {"path": path, "bytes": f.bytes, "sha256": f.sha256, "rows": f.rows}


def write_manifest(root: Location, files: list[tuple[str, WrittenFile]], extra: dict) -> dict:
    """manifest.json, written last: its presence says the output is complete."""
    entries = [file_entry(path, f) for path, f in files]
    manifest = {
        **extra,
        "files": entries,
        "rows": sum(e["rows"] for e in entries if e["path"].startswith("data/") and e["path"].endswith(".parquet"))
        or sum(e["rows"] for e in entries if e["path"].startswith("data/")),
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def write_dataset_card(root: Location, name: str, formats: list[str], stats: dict, schema: list[str]) -> None:
    """README.md with the YAML header the Hugging Face `datasets` library and Hub read."""
    fmt = formats[0]
    header = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        f"  - split: train\n    path: data/*.{fmt}\n---\n"
    )
    lines = [f"# {name}", "", "Written by `pipeline run`. Load it with:", "", "```python",
             "import datasets", f'ds = datasets.load_dataset("{root}", split="train")', "```", "",
             f"Columns: {', '.join(f'`{c}`' for c in schema)}.", "", "## How it was made", "",
             "| stage | rows in | kept | dropped | tokens kept |", "|---|---:|---:|---:|---:|"]
    for s in stats["stages"]:
        lines.append(f"| {s['id']} | {s['rows_in']:,} | {s['kept']:,} | {s['dropped']:,} | {s['tokens_kept']:,} |")
    lines += ["", "Per-stage details and drop reasons: `stats.json` and `report.html`; dropped rows: `rejects/`.", ""]
    (root / "README.md").write_text(header + "\n".join(lines))
