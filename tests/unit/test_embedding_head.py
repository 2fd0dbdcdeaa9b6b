"""The regression head on embeddings (FineWeb-Edu's classifier): what it learns, its scale, its file."""

from __future__ import annotations

import numpy as np
import pytest

from filters import embedding_head


def test_a_linear_score_is_learnt_and_mapped_onto_the_rubric_scale(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    truth = rng.normal(size=16)
    scores = np.clip(np.round(2.5 + vectors @ truth), 0, 5)
    head = embedding_head.fit("models/embedder", vectors[:300], scores[:300], scale=(0, 5))
    held_out = head.predict(vectors[300:])
    assert np.corrcoef(held_out, scores[300:])[0, 1] > 0.9
    quality = head.quality(vectors[300:])
    assert quality.min() >= 0 and quality.max() <= 1
    assert np.allclose(quality, np.clip(held_out / 5, 0, 1))

    head.save(tmp_path / "head.json")
    again = embedding_head.load(tmp_path / "head.json")
    assert again.embedding_model == "models/embedder" and again.scale == (0, 5) and again.alpha in embedding_head.ALPHAS
    assert np.allclose(again.predict(vectors[300:]), held_out, atol=1e-4)


def test_files_that_are_not_a_head_are_told_apart(tmp_path):
    assert embedding_head.is_head("edu.json") and not embedding_head.is_head("edu.bin")
    (tmp_path / "other.json").write_text('{"kind": "something"}')
    with pytest.raises(ValueError, match="not a regression head"):
        embedding_head.load(tmp_path / "other.json")
    (tmp_path / "binary.json").write_bytes(b"\x00\xff\x10")
    with pytest.raises(ValueError, match="not a JSON regression head"):
        embedding_head.load(tmp_path / "binary.json")
    with pytest.raises(ValueError, match="nothing to learn"):
        embedding_head.fit("m", np.ones((5, 3)), [2.0] * 5)
