"""The embeddings module on real (tiny, locally built) sentence-transformers models: a static one, and a
BERT, whose attention is what a GPU computes differently (its test runs in the GPU session,
benchmarks/gpu_session.sh)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from filters.embeddings import Embedder, model_problem
from filters.semdedup import assign, fit_centroids, resolve
from pipeline.errors import UserError
from tiny_models.embedder import build, build_transformer, vocabulary

TEXTS = ["The cat sat on the mat.", "On the mat the cat sat", "Stocks fell sharply on Wall Street today.",
         "Rain is expected across the north on Monday."]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(build(tmp_path_factory.mktemp("embedder"), vocabulary(TEXTS), dim=16))


def test_vectors_are_unit_float32_and_cosines_follow_shared_words(model):
    embedder = Embedder(model, device="auto", batch_size=2)
    v = embedder.encode(TEXTS + ["zzz qqq"])  # words the model does not know: a zero vector
    assert v.dtype == np.float32 and v.shape == (5, 16) and embedder.dim == 16 and embedder.device == "cpu"
    assert np.allclose(np.linalg.norm(v[:4], axis=1), 1, atol=1e-6) and not v[4].any()
    cos = v @ v.T
    assert cos[0, 1] == pytest.approx(1, abs=1e-6)  # same words, another order
    assert cos[0, 2] < 0.6 and cos[2, 3] < 0.6
    assert embedder.encode([]).shape == (0, 16)


def test_a_model_that_cannot_be_loaded_is_one_line_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    for bad in (str(tmp_path), str(tmp_path / "notes.txt"), str(tmp_path / "missing")):
        with pytest.raises(UserError) as err:
            Embedder(bad)
        assert bad in str(err.value) and "\n" not in str(err.value)
    assert model_problem(str(tmp_path / "missing")) == f"embedding model {tmp_path / 'missing'} does not exist"
    assert model_problem("sentence-transformers/all-MiniLM-L6-v2") is None  # a Hub id: known only when loaded


def near_copies(n: int = 200, seed: int = 3) -> list[str]:
    """n sentences of 12 words drawn from 300, then each again with one word changed: pairs a
    semantic dedup must find, among texts that share words by chance."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(300)]
    texts = [[rng.choice(words) for _ in range(12)] for _ in range(n)]
    copies = [t[:] for t in texts]
    for c in copies:
        c[rng.randrange(12)] = rng.choice(words)
    return [" ".join(t) for t in texts + copies]


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> str:
    return str(build_transformer(tmp_path_factory.mktemp("bert"), vocabulary(near_copies()), dim=64))


def semdedup_verdicts(vectors: np.ndarray, threshold: float) -> dict:
    ids = [f"{i:03d}" for i in range(len(vectors))]
    clusters = assign(vectors, fit_centroids(vectors, clusters=4, seed=0))
    table = resolve(ids, vectors, clusters, np.full(len(ids), np.nan), np.full(len(ids), 12),
                    ["quality", "longest", "smallest_id"], threshold)
    return {r["id"]: r["semdup_of"] for r in table.to_pylist()}


def test_a_transformer_model_embeds_and_finds_the_near_copies(bert):
    texts = near_copies()
    v = Embedder(bert, device="cpu", batch_size=32).encode(texts)
    assert v.dtype == np.float32 and v.shape == (400, 64) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    cos = v @ v.T
    np.fill_diagonal(cos, -1)
    nearest = cos.argmax(axis=1)
    assert (nearest[:200] == np.arange(200, 400)).mean() > 0.9  # a text's nearest is its own copy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_a_gpu_embeds_as_the_cpu_does_and_semdedup_removes_the_same_rows(bert):
    """What the semdedup, select and contamination stages get from a worker given `num_gpus`."""
    texts = near_copies()
    on_gpu = Embedder(bert, device="auto", batch_size=32)
    assert on_gpu.device == "cuda" and next(on_gpu.model.parameters()).is_cuda
    gpu, cpu = on_gpu.encode(texts), Embedder(bert, device="cpu", batch_size=32).encode(texts)
    assert np.abs(gpu - cpu).max() < 1e-4
    cos = cpu @ cpu.T
    # a threshold no pair's cosine lies within 1e-3 of, so float differences cannot decide a verdict
    threshold = next(t for t in np.arange(0.90, 0.99, 0.005) if not (np.abs(cos - t) < 1e-3).any())
    verdicts = semdedup_verdicts(cpu, threshold)
    assert len(verdicts) >= 150 and semdedup_verdicts(gpu, threshold) == verdicts
