"""Sentence embeddings for the stages that compare texts by meaning (semantic dedup, selection,
the contamination semantic pass), from one sentence-transformers model, with no Ray.

Vectors come back L2-normalised as float32, so a dot product is the cosine and every caller
compares the same numbers whatever the model's own `normalize` module says. sentence-transformers
is imported only when a model is loaded: it is an optional extra (`pip install .[semantic]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pyarrow as pa

from pipeline.errors import UserError

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: Device) -> str:
    """`auto` is cuda when this process sees a GPU (a Ray worker given `num_gpus`), else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_problem(model: str) -> str | None:
    """Why `model` cannot be a model, found without loading it: a local path that is not there.
    A Hub id (`org/name`, not an existing path) is only known to be wrong once it is loaded."""
    path = Path(model).expanduser()
    if path.exists():
        return None if path.is_dir() else f"embedding model {model} is a file, not a sentence-transformers model folder"
    looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model
    return f"embedding model {model} does not exist" if looks_local else None


class Embedder:
    """A sentence-transformers model on one device, loaded once (per worker, in a stage's setup()).

    `model` is a local folder or a Hub id; a model that cannot be loaded (missing, not a
    sentence-transformers model, Hub unreachable) is a one-line `UserError` naming it.
    """

    def __init__(self, model: str, device: Device = "auto", batch_size: int = 64, max_seq_length: int | None = None):
        problem = model_problem(model)
        if problem:
            raise UserError(problem)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise UserError("embeddings need sentence-transformers: pip install 'instruct-pipeline[semantic]'") from None
        self.device = resolve_device(device)
        self.batch_size = batch_size
        try:
            self.model = SentenceTransformer(str(Path(model).expanduser()) if Path(model).expanduser().exists() else model,
                                             device=self.device)
        except Exception as e:  # any loader failure is the user's model choice: one line, not a traceback
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"embedding model {model} cannot be loaded: {type(e).__name__}: {first}") from None
        if max_seq_length is not None and hasattr(self.model, "max_seq_length"):
            self.model.max_seq_length = max_seq_length
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of norm 1 (a text with no known token: all zeros)."""
        if not len(texts):
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                    show_progress_bar=False, normalize_embeddings=False)
        return normalise(np.asarray(vectors, dtype=np.float32))


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 1; zero rows stay zero (cosine 0 with everything, never a duplicate)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32, copy=False)


def vectors_of(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A fixed-size-list column of embeddings as one (rows, dim) float32 array, without a copy per row."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.float32(), dim))
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
