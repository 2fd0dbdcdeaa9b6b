"""Writers: output shards, rejects, the manifest and the dataset card.

Shards are written by Ray into a temporary directory and moved into place when complete, then
renamed `part-00000-of-00004.parquet` in Ray's task order so the names say how many there are
and sort in output order. The dataset card carries the YAML header that makes
`datasets.load_dataset(OUTPUT_DIR)` find the shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from ray.data.expressions import col

from pipeline.config import OutputConfig
from pipeline.records import CHARS, DROP_REASON, DROP_STAGE, INTERNAL_COLUMNS, TOKENS

_EXT = {"parquet": "parquet", "jsonl": "jsonl"}


def write_shards(dataset, directory: Path, fmt: str, config: OutputConfig) -> list[Path]:
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}")
    sizing = {}
    if config.shard_bytes:
        sizing["min_bytes_per_file"] = config.shard_bytes
    elif config.shard_rows:
        sizing.update(min_rows_per_file=config.shard_rows, max_rows_per_file=config.shard_rows)
    if fmt == "parquet":
        dataset.write_parquet(str(tmp), **sizing)
    else:
        dataset.write_json(str(tmp), **{k: v for k, v in sizing.items() if k == "min_rows_per_file"},
                           force_ascii=False)
    tmp.mkdir(parents=True, exist_ok=True)
    files = sorted((p for p in tmp.iterdir() if p.is_file()), key=_write_order)
    for i, path in enumerate(files):
        path.rename(tmp / f"part-{i:05d}-of-{len(files):05d}.{_EXT[fmt]}")
    shutil.rmtree(directory, ignore_errors=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, directory)
    return sorted(directory.iterdir())


def _write_order(path: Path):
    """Ray names files `{uuid}_{task:06}_{block:06}.ext`: sort by task then block."""
    numbers = re.findall(r"_(\d{6})", path.name)
    return [int(n) for n in numbers], path.name


def kept(dataset):
    """Rows no stage dropped, without the engine's accounting columns."""
    return dataset.filter(expr=col(DROP_REASON).is_null()).drop_columns(list(INTERNAL_COLUMNS))


def write_rejects(dataset, directory: Path, config: OutputConfig) -> list[Path]:
    """Dropped rows of every stage, one directory per stage, with columns `reason` and `stage`.

    One Ray job for all stages: the rows are partitioned by the stage that dropped them.
    """
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}")
    rejects = (dataset.filter(expr=col(DROP_REASON).is_not_null())
               .drop_columns([TOKENS, CHARS])
               .rename_columns({DROP_REASON: "reason", DROP_STAGE: "stage"}))
    rejects.write_parquet(str(tmp), partition_cols=["stage"])
    written = []
    for part in sorted(tmp.glob("stage=*")) if tmp.exists() else []:
        target = directory / part.name.split("=", 1)[1]
        files = sorted((p for p in part.iterdir() if p.is_file()), key=_write_order)
        target.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            written.append(path.rename(target / f"part-{i:05d}-of-{len(files):05d}.parquet"))
    shutil.rmtree(tmp, ignore_errors=True)
    return written


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
        f"  - split: train\n    path: data/*.{_EXT[fmt]}\n---\n"
    )
    lines = [f"# {name}", "", "Written by `pipeline run`. Load it with:", "", "```python",
             "import datasets", f'ds = datasets.load_dataset("{root}", split="train")', "```", "",
             f"Columns: {', '.join(f'`{c}`' for c in schema)}.", "", "## How it was made", "",
             "| stage | rows in | kept | dropped | tokens kept |", "|---|---:|---:|---:|---:|"]
    for s in stats["stages"]:
        lines.append(f"| {s['id']} | {s['rows_in']:,} | {s['kept']:,} | {s['dropped']:,} | {s['tokens_kept']:,} |")
    lines += ["", "Per-stage details and drop reasons: `stats.json` and `report.html`; dropped rows: `rejects/`.", ""]
    (root / "README.md").write_text(header + "\n".join(lines))
