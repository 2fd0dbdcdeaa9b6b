"""README.md and docs/*.md point only at files that exist: a path into the repository (`docs/...`,
`benchmarks/...`, a glob like `configs/quickstart/*.warc.gz`) or a Markdown link, wherever it appears."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("benchmarks", "configs", "docs", "filters", "generators", "pipeline", "scripts", "stages", "tests", "tiny_models")
# A folder (ends with /) or a file (ends with an extension); "docs/s" is a rate, not a path.
REPO_PATH = re.compile(rf"(?<![\w./<>-])((?:{'|'.join(TOP)})/(?:[\w.*-]+/)*(?:[\w*-]+\.[\w.]+)?)(?![\w/])")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def missing(doc: Path) -> list[str]:
    text = doc.read_text()
    cited = [(ROOT, p.rstrip(".")) for p in REPO_PATH.findall(text)]
    cited += [(doc.parent, p) for p in LINK.findall(text) if "://" not in p]
    return sorted({p for base, p in cited if not any(base.glob(p)) and not (base / p).exists()})


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_file_a_doc_points_at_exists(doc):
    assert missing(doc) == []
