"""The embeddings module on a real (tiny, locally built) sentence-transformers model."""

from __future__ import annotations

import numpy as np
import pytest

from filters.embeddings import Embedder, model_problem
from pipeline.errors import UserError
from tiny_models.embedder import build, vocabulary

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
