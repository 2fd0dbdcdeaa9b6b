"""`pii`: replace e-mail addresses, phone numbers, IP addresses and card numbers with placeholders.

Documents are redacted in `text`; instruction records in every message's `content` (or only the
roles listed). No row is dropped: the stage rewrites text and records what it replaced in a
`pii` column (a count per type), which `summarize` totals for the run report.
"""

from __future__ import annotations

import functools
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from filters.pii import PII_TYPES, PLACEHOLDERS, PiiRedactor
from pipeline.records import MESSAGE_TYPE, set_column
from pipeline.registry import register
from pipeline.stage import MapStage, StageConfig

PiiType = Literal["email", "credit_card", "ip_address", "phone"]
COUNTS_TYPE = pa.struct([(t, pa.int32()) for t in PII_TYPES])


class PiiConfig(StageConfig):
    types: list[PiiType] = Field(list(PII_TYPES), min_length=1, description="what to find and replace")
    placeholders: dict[PiiType, str] = Field({}, description=f"replacement text per type (defaults: {PLACEHOLDERS})")
    phone_region: str = Field("US", description="region (ISO 3166 code) for numbers written without a +country code")
    public_ips_only: bool = Field(True, description="leave private, loopback and documentation addresses alone")
    roles: list[str] | None = Field(None, description="instruction records: roles whose messages are redacted (None = all)")

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        import phonenumbers

        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region '{region}' (use an ISO 3166 code such as US, GB, DE)")
        return region.upper()


@register
class Pii(MapStage):
    """Redact personal data in documents or instruction messages and count it per type."""

    name = "pii"
    Config = PiiConfig

    def setup(self) -> None:
        c = self.config
        self.redactor = PiiRedactor(c.types, {**PLACEHOLDERS, **c.placeholders}, c.phone_region, c.public_ips_only)

    def process_batch(self, batch: pa.Table) -> pa.Table:
        if "text" in batch.column_names:
            redacted = [self.redactor.redact(t) for t in batch.column("text").to_pylist()]
            batch = set_column(batch, "text", pa.array([t for t, _ in redacted], pa.string()))
            counts = [c for _, c in redacted]
        elif "messages" in batch.column_names:
            redacted = [self._redact_messages(m) for m in batch.column("messages").to_pylist()]
            batch = set_column(batch, "messages", pa.array([m for m, _ in redacted], MESSAGE_TYPE))
            counts = [c for _, c in redacted]
        else:
            counts = [{}] * batch.num_rows
        full = [{t: c.get(t, 0) for t in PII_TYPES} for c in counts]
        return set_column(batch, "pii", pa.array(full, COUNTS_TYPE))

    def _redact_messages(self, messages: list[dict] | None) -> tuple[list[dict] | None, dict[str, int]]:
        totals = dict.fromkeys(PII_TYPES, 0)
        if not messages:
            return messages, totals
        roles = self.config.roles
        out = []
        for m in messages:
            content = m.get("content")
            if content and (roles is None or m.get("role") in roles):
                content, found = self.redactor.redact(content)
                for t, n in found.items():
                    totals[t] += n
            out.append({"role": m.get("role"), "content": content})
        return out, totals

    def summarize(self, output) -> dict:
        types = list(self.config.types)
        totals = dict.fromkeys([*types, "rows_with_pii"], 0)
        per_block = output.map_batches(_count_columns, fn_args=(types,), batch_format="pyarrow", batch_size=None)
        for row in per_block.iter_rows():
            for name in totals:
                totals[name] += row[name]
        replaced = {t: totals[t] for t in types}
        return {
            "replaced": replaced,
            "rows_with_pii": totals["rows_with_pii"],
            "plots": [
                {"kind": "bar", "title": "PII replaced", "x": types, "y": list(replaced.values()), "xlabel": "type", "ylabel": "replacements"}
            ],
        }


def _count_columns(batch: pa.Table, types: list[str]) -> pa.Table:
    """One row: the batch's replacements per type and its rows with any (rows that skipped the stage count 0)."""
    if "pii" not in batch.column_names:
        return pa.table({name: [0] for name in [*types, "rows_with_pii"]})
    pii = batch.column("pii")
    counts = {t: pc.fill_null(pc.struct_field(pii, t), 0) for t in types}
    with_pii = pc.greater(functools.reduce(pc.add, counts.values()), 0)
    return pa.table({**{t: [pc.sum(c).as_py() or 0] for t, c in counts.items()}, "rows_with_pii": [pc.sum(with_pii).as_py() or 0]})
