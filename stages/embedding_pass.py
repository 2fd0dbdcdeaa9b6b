"""The embedding pass of the stages that compare texts by meaning (semdedup, select).

A stage runs it with `run_substage(Embed(config, ctx), dataset)`: a map pass, on the owning
stage's resources (a CPU per worker by default; `resources: {num_gpus: 1}` gives a pool of GPU
workers), that loads the sentence-transformers model once per worker and adds each row's unit
vector as a fixed-size list column, `VECTOR`, which the owning stage drops before its output.
The config must have `model`, `device`, `batch_size`, `max_seq_length` and `view` options.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from filters.embeddings import vectors_of
from pipeline.records import set_column, text_column
from pipeline.stage import MapStage, Resources

VECTOR = "_vector"


class Embed(MapStage):
    name = "embed"
    resources = Resources(num_cpus=1, batch_size=256)

    def setup(self) -> None:
        from filters.embeddings import Embedder

        c = self.config
        self.embedder = Embedder(c.model, c.device, c.batch_size, c.max_seq_length)

    def process_batch(self, batch: pa.Table) -> pa.Table:
        vectors = self.embedder.encode(text_column(batch, self.config.view))
        values = pa.array(vectors.reshape(-1), pa.float32())
        return set_column(batch, VECTOR, pa.FixedSizeListArray.from_arrays(values, self.embedder.dim))


def vectors(table: pa.Table) -> np.ndarray:
    """The (rows, dim) float32 vectors of a table that went through `Embed`."""
    column = table.column(VECTOR)
    return vectors_of(column, column.type.list_size)
