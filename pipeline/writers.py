"""What a run leaves beside its shards: the manifest, the dataset card, and the kept-rows view.

The dataset card carries the YAML header that makes `datasets.load_dataset(OUTPUT_DIR)` find
the shards. Shards and rejects themselves are written by `sinks.RoutingSink`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
from ray.data.expressions import col

from pipeline.records import DROP_REASON, INTERNAL_COLUMNS

def kept(dataset):
    """Rows no stage dropped, without the engine's accounting columns."""
    return dataset.filter(expr=col(DROP_REASON).is_null()).drop_columns(list(INTERNAL_COLUMNS))


def schema_of(written: dict[str, list[Path]]) -> list[str]:
    """Column names of the output, read from the first shard."""
    for path in written.get("parquet", []):
        return pq.read_schema(path).names
    for path in written.get("jsonl", []):
        with open(path, encoding="utf-8") as f:
            line = f.readline()
        return list(json.loads(line)) if line else []
    return []


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path, root: Path) -> dict:
    entry = {"path": str(path.relative_to(root)), "bytes": path.stat().st_size, "sha256": sha256(path)}
    if path.suffix == ".parquet":
        entry["rows"] = pq.read_metadata(path).num_rows
    else:
        with open(path, "rb") as f:
            entry["rows"] = sum(1 for _ in f)
    return entry


def write_manifest(root: Path, files: list[Path], extra: dict) -> dict:
    entries = [file_entry(p, root) for p in files]
    manifest = {
        **extra,
        "files": entries,
        "rows": sum(e["rows"] for e in entries if e["path"].startswith("data/") and e["path"].endswith(".parquet"))
        or sum(e["rows"] for e in entries if e["path"].startswith("data/")),
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def write_dataset_card(root: Path, name: str, formats: list[str], stats: dict, schema: list[str]) -> None:
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
