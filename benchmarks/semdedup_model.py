"""The benchmark's embedding model, built offline: fastText skipgram word vectors trained on the shared
English text, SIF-weighted and wrapped as a sentence-transformers StaticEmbedding (mean pooling).

No sentence-transformers model can be downloaded here, and a random-vector model (the tests') only
measures shared words. Skipgram vectors put words used in the same contexts close together, so a
text with words replaced by near-synonyms stays close while another story on the same topic does
not. The sentence vector is a SIF embedding (Arora et al., 2017): each word vector is scaled by
a / (a + p(word)), so frequent words weigh little, and the corpus's common direction (the first
principal component of the texts' vectors) is projected out. Both are linear in the word
vectors, so they are baked into the static vectors and mean pooling stays exact.

    python benchmarks/semdedup_model.py OUT_DIR   # trains once; a second call reuses OUT_DIR/skipgram.bin
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
WORD = re.compile(r"\w+")  # what the StaticEmbedding's tokenizer splits (lower case, punctuation removed)
SIF_A = 1e-3
SKIPGRAM = "skipgram.bin"


def english_text() -> list[str]:
    """Every English text of the shared data: AG News, MMLU questions, GSM8K, HH-RLHF dialogues."""
    texts = []
    with open(DATA / "classification/ag_news/train80.csv", newline="", encoding="utf-8") as f:
        texts += [f"{title}. {desc}" for _, title, desc in csv.reader(f)]
    for path in sorted((DATA / "benchmarks/mmlu/test").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            texts += [" ".join(row[:5]) for row in csv.reader(f)]
    with open(DATA / "benchmarks/gsm8k/test.jsonl", encoding="utf-8") as f:
        texts += [f"{r['question']} {r['answer']}" for r in map(json.loads, f)]
    with gzip.open(DATA / "preferences/hh_rlhf_harmless/pairs.jsonl.gz", "rt", encoding="utf-8") as f:
        texts += [json.loads(line)["chosen"] for line in f]
    return texts


def train_vectors(texts: list[str], dim: int = 100, epoch: int = 10):
    """fastText skipgram on the lower-cased words of `texts`; one thread, so the vectors are repeatable."""
    import fasttext

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for t in texts:
            f.write(" ".join(WORD.findall(t.lower())) + "\n")
    try:
        return fasttext.train_unsupervised(f.name, model="skipgram", dim=dim, epoch=epoch, minCount=2, thread=1, verbose=0)
    finally:
        os.unlink(f.name)


def sif_vectors(ft, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Each word's vector scaled by a / (a + p(word)), with the first principal component of the
    texts' (weighted mean) vectors removed: SIF's common component, projected out of every word
    vector, which is the same as out of every mean."""
    words, counts = ft.get_words(include_freq=True)
    p = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    vectors = np.stack([ft.get_word_vector(w) for w in words]).astype(np.float64) * (SIF_A / (SIF_A + p))[:, None]
    index = {w: i for i, w in enumerate(words)}
    means = [vectors[ids].mean(0) for t in texts if (ids := [index[w] for w in WORD.findall(t.lower()) if w in index])]
    u = np.linalg.svd(np.asarray(means), full_matrices=False)[2][0]
    return list(words), (vectors - np.outer(vectors @ u, u)).astype(np.float32)


def build_model(out_dir: str | Path):
    """The model folder, and the fastText model (the paraphraser's source of neighbour words).

    The skipgram model is kept in the folder (`skipgram.bin`) and reused when it is there: training
    takes minutes, building the sentence-transformers folder from it a second."""
    import fasttext

    from tiny_models.embedder import build

    texts = english_text()
    trained = Path(out_dir) / SKIPGRAM
    ft = fasttext.load_model(str(trained)) if trained.exists() else train_vectors(texts)
    words, vectors = sif_vectors(ft, texts)
    folder = build(out_dir, words, vectors)
    if not trained.exists():
        ft.save_model(str(trained))
    return folder, ft


if __name__ == "__main__":
    print(build_model(sys.argv[1])[0])
