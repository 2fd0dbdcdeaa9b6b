"""Documents for the language-modelling objective: windows that lose no token, and the token mix."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from pipeline.errors import UserError
from pipeline.storage import locate
from pipeline.train.data import IGNORE, ChatEncoder
from pipeline.train.documents import DocumentEncoder, mix
from pipeline.train.run import sft_data


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def texts(shared_data):
    """Real prose: the outputs of the Self-Instruct seed tasks, joined into documents of a few hundred tokens."""
    seeds = [json.loads(line) for line in (shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl").open()]
    outputs = [inst["output"] for s in seeds for inst in s["instances"]]
    return ["\n\n".join(outputs[i : i + 12]) for i in range(0, 120, 12)]


def test_long_documents_become_windows_with_every_token_a_target_once(tokenizer, texts):
    encoder = DocumentEncoder(tokenizer, max_seq_len=64)
    for text in texts:
        ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        windows = encoder.encode(text)
        assert len(ids) > 64 and len(windows) > 1  # these documents are longer than the limit
        assert all(len(w.input_ids) <= 64 and len(w.targets) == len(w.input_ids) for w in windows)
        assert [t for w in windows for t in w.targets if t != IGNORE] == ids[1:]
        for w in windows:  # each target is the token that follows its position in the document
            assert [t for t in w.targets[:-1]] == w.input_ids[1:]
    short = encoder.encode("A short note.")
    assert len(short) == 1 and short[0].input_ids[0] == tokenizer.bos_token_id and short[0].n_targets == len(short[0].input_ids) - 1


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.8])
def test_mix_meets_the_token_ratio(tokenizer, texts, seed_chats, ratio):
    chats = ChatEncoder(tokenizer, 128)
    instructions = [chats.encode(c) for c in seed_chats[:40]]
    windows = [w for t in texts for w in DocumentEncoder(tokenizer, 64).encode(t)]
    instruction_tokens = sum(e.n_targets for e in instructions)
    available = sum(w.n_targets for w in windows)

    mixture = mix(instructions, windows, ratio, seed=0)
    documents = sum(w.n_targets for w in mixture.windows)
    assert abs(documents / (documents + instruction_tokens) - ratio) < 1e-3
    assert documents == mixture.document_tokens and mixture.passes == pytest.approx(documents / available)
    if documents > available:  # more than the documents hold: they are repeated, not invented
        assert mixture.passes > 1 and len(mixture.windows) > len(windows)
    assert mix(instructions, windows, ratio, seed=0).windows == mixture.windows  # seeded
    assert mix(instructions, windows, None, seed=0).windows == windows  # no ratio: every window once


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_sft_data_reads_documents_from_the_run_and_from_documents(make_config, tokenizer, texts, seed_chats, tmp_path):
    run = tmp_path / "run"
    _write(run / "data" / "docs.parquet", [{"id": f"d{i}", "text": t, "origin_id": f"d{i}"} for i, t in enumerate(texts)])
    provenance: dict = {}
    data = sft_data(make_config(sft={"eval_fraction": 0.2}), tokenizer, [locate(run / "data")], provenance)
    docs = provenance["documents"]
    assert "instructions" not in provenance and data.encoder is None
    assert docs["rows"] == 10 and docs["train"] == 8 and docs["held_out"] == 2 and docs["held_out_families"] == 2
    assert docs["objective"].startswith("language modelling") and len(data.train) == docs["windows"] > 8

    chats = _write(tmp_path / "chats.parquet", [{"id": str(i), "messages": c} for i, c in enumerate(seed_chats[:30])])
    cfg = make_config(data=[str(chats)], documents=[str(run / "data")], document_token_ratio=0.25)
    provenance = {}
    data = sft_data(cfg, tokenizer, [locate(run / "data")], provenance)
    assert provenance["instructions"]["rows"] == 30 and provenance["documents"]["rows"] == 10
    assert provenance["documents"]["token_share"] == pytest.approx(0.25, abs=1e-3)
    instruction_tokens = sum(e.n_targets for e in data.chat_examples)
    assert sum(e.n_targets for e in data.train) == pytest.approx(instruction_tokens / 0.75, rel=1e-3)


def test_document_mistakes_are_one_line(make_config, tokenizer, seed_chats, tmp_path):
    chats = _write(tmp_path / "chats.parquet", [{"id": str(i), "messages": c} for i, c in enumerate(seed_chats[:4])])
    with pytest.raises(UserError, match=r"documents: .*chats.parquet has no 'text' column"):
        sft_data(make_config(documents=[str(chats)]), tokenizer, [], {})
    with pytest.raises(UserError, match="only instruction rows"):
        sft_data(make_config(data=[str(chats)], document_token_ratio=0.3), tokenizer, [], {})
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="document_token_ratio"):
        make_config(document_token_ratio=1.0)
