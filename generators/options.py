"""The base of an algorithm's options.

Each generation algorithm owns its options (a pydantic model here, free of Ray and of `pipeline`):
their types, bounds, descriptions and cross-checks are written once, and the stage that runs the
algorithm embeds them by inheriting them, so a YAML key, its `pipeline stages` line and the value
the algorithm reads cannot drift apart. What only the run knows (its seed) is added by `of`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def of(cls, options: BaseModel, **run: Any):
        """This config from a stage's options, which embed this algorithm's, plus what only the run knows."""
        return cls(**options.model_dump(include=set(cls.model_fields) - set(run)), **run)
