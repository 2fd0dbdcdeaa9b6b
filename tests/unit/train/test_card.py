"""The model card: the held-out families, the documents' objective and mix, and the run-tracking figures."""

from __future__ import annotations

from pipeline.storage import locate
from pipeline.train.card import write_model_card
from pipeline.train.config import FinetuneConfig


def test_card_reports_families_documents_and_run_tracking(tmp_path):
    provenance = {
        "instructions": {"rows": 40, "files": ["a.parquet"], "train": 31, "held_out": 9, "train_families": 12,
                         "held_out_families": 3, "truncated": 0},
        "documents": {"rows": 9, "files": ["web/data/part-0.parquet"], "train": 7, "held_out": 2, "train_families": 7,
                      "held_out_families": 2, "objective": "language modelling (every token of a document is a target)",
                      "windows": 26, "max_seq_len": 128, "asked_token_ratio": 0.3, "document_target_tokens": 600,
                      "instruction_target_tokens": 1400, "token_share": 0.3, "passes": 0.25},
        "skipped_rows": 2,
    }
    results = {"sft_step": 8, "sft_loss": 2.5, "sft_wall_s": 12.34, "sft_mean_tokens_per_s": 4567.8,
               "sft_peak_mem_mb": 812.4, "dpo_step": 2, "dpo_wall_s": 3.0, "dpo_mean_tokens_per_s": 900.0,
               "dpo_peak_mem_mb": 830.0, "dpo_mean_mfu": 0.4123}
    card = write_model_card(locate(tmp_path), FinetuneConfig(model="m"), locate(tmp_path), provenance, results).read_text()

    assert "- instructions: 40 rows from 1 files (31 train, 9 held out, 0 truncated)" in card
    assert "held out by lineage: 12 families train, 3 held out" in card
    assert "- documents: 9 rows from 1 files (7 train, 2 held out)" in card
    assert "objective: language modelling (every token of a document is a target); 26 training windows of up to 128" in card
    assert "documents are 30.0% of the SFT target tokens (600 of 2000, asked 30.0%), the documents seen 0.25x" in card
    assert "`web/data/part-0.parquet`" in card and "skipped: 2 rows" in card

    tracking = card.split("## Run tracking")[1]
    assert "- sft: wall time 12.3 s, 4,568 tokens/s, peak memory 812 MiB\n" in tracking  # no MFU measured: none shown
    assert "- dpo: wall time 3.0 s, 900 tokens/s, peak memory 830 MiB, MFU 41.2%" in tracking
    results_section = card.split("## Results")[1].split("## Run tracking")[0]
    assert "- sft_loss: 2.5" in results_section and "wall_s" not in results_section
