"""The `structured` option: whether a generator asks its server to decode into the format it parses.

Every generator that parses a format (Self-Instruct's task lists, instances and Yes/No, Evol-Instruct's
rewrites and Equal/Different, the judge's ratings and winners, the annotator's scores) inherits this
option, so the key, its description and its check are written once. `auto` sends a `Guide` the backend
may drop (a server that refuses guided decoding gets free text, detected once); `on` makes a backend
that cannot guide fail the request, so a run that must be guided stops instead of silently parsing
free text; `off` sends no guide.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from generators.client import Guide
from generators.options import Options

StructuredMode = Literal["auto", "on", "off"]


class StructuredOption(Options):
    structured: StructuredMode = Field(
        default="auto",
        description="guided decoding into the format parsed (auto: where the server supports it; on: required; off: free text)",
    )

    def guide(self, regex: str) -> Guide | None:
        """The guide for one format under this mode (None when `off`)."""
        return None if self.structured == "off" else Guide(regex, required=self.structured == "on")
