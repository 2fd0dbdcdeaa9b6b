"""The pii stage through the engine: documents and instruction messages redacted, counts totalled."""

from __future__ import annotations

import pytest
import ray.data
from pydantic import ValidationError

from pipeline.config import build_stage
from pipeline.execute import run_stage as execute
from stages.pii import PiiConfig


def test_documents_and_messages_are_redacted_and_counted(tmp_path, ray_session):
    docs = [
        {"id": "a", "text": "Mail jane@example.org or call (650) 253-0000.", "source": "t"},
        {"id": "b", "text": "Released 2024-01-15, version 1.2.3.4, 12 15 18 20 22.", "source": "t"},
        {"id": "c", "text": None, "source": "t"},
    ]
    stage = build_stage("pii", {}, index=1, output_dir=tmp_path)
    out = execute(stage, ray.data.from_items(docs)).materialize()
    rows = {r["id"]: r for r in out.take_all()}
    assert rows["a"]["text"] == "Mail <EMAIL> or call <PHONE>."
    assert rows["a"]["pii"] == {"email": 1, "credit_card": 0, "ip_address": 0, "phone": 1}
    assert rows["b"]["text"] == docs[1]["text"] and sum(rows["b"]["pii"].values()) == 0
    assert rows["c"]["text"] is None
    summary = stage.summarize(out)
    assert summary["replaced"] == {"email": 1, "credit_card": 0, "ip_address": 0, "phone": 1}
    assert summary["rows_with_pii"] == 1


def test_instruction_messages_by_role(run_stage):
    messages = [
        {"role": "system", "content": "Admin: root@example.com"},
        {"role": "user", "content": "My card is 4111 1111 1111 1111, server 8.8.8.8."},
        {"role": "assistant", "content": "Never share 4111 1111 1111 1111 with anyone."},
    ]
    rows = [{"id": "i", "messages": messages, "source": "t", "generated_by": "human"}]
    kept, dropped = run_stage("pii", {"roles": ["user"]}, rows)
    assert not dropped
    out = kept[0]["messages"]
    assert [m["content"] for m in out] == [
        "Admin: root@example.com",
        "My card is <CREDIT_CARD>, server <IP_ADDRESS>.",
        "Never share 4111 1111 1111 1111 with anyone.",
    ]
    assert kept[0]["pii"] == {"email": 0, "credit_card": 1, "ip_address": 1, "phone": 0}


@pytest.mark.parametrize("options,message", [({"types": ["ssn"]}, "types"), ({"phone_region": "XX"}, "unknown phone region")])
def test_config_errors(options, message):
    with pytest.raises(ValidationError, match=message):
        PiiConfig.model_validate(options)
