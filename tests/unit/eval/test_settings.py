"""The eval settings are checked when a config loads (before any training), and the model card carries
what an eval of its adapter needs: the run, the settings of the split, and the table it gets back."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline import storage
from pipeline.train.card import add_evaluation, trained_from, write_model_card
from pipeline.train.config import FinetuneConfig


def test_eval_section_is_validated_at_load():
    cfg = FinetuneConfig.model_validate({"model": "m", "eval": {"enabled": True, "tasks": ["held_out", "mmlu"], "limit": 5}})
    assert cfg.eval.enabled and cfg.eval.tasks == ["held_out", "mmlu"] and cfg.eval.limit == 5
    for bad, message in (({"taks": ["mmlu"]}, "taks"), ({"tasks": []}, "at least 1"), ({"limit": 0}, "greater than"),
                         ({"tasks": ["mmlu", "mmlu"]}, "named twice"),
                         ({"judge": {"backend": "vllm_server", "model": "j", "urll": "http://x"}}, "urll")):
        with pytest.raises(ValidationError, match=message):
            FinetuneConfig.model_validate({"model": "m", "eval": bad})


def test_a_card_names_its_run_and_settings_and_takes_the_table(tmp_path):
    cfg = FinetuneConfig.model_validate({"model": "m", "seed": 7, "sft": {"eval_fraction": 0.25}})
    out = storage.locate(tmp_path)
    card = write_model_card(out, cfg, storage.locate(tmp_path / "run"), {}, {"sft_loss": 1.0})
    run_dir, settings = trained_from(card.read_text())
    assert run_dir == str(storage.locate(tmp_path / "run"))
    assert FinetuneConfig.model_validate(settings) == cfg

    add_evaluation(card, "| task | base |\n|---|---|\n| held_out | 0.1 |")
    add_evaluation(card, "| task | base |\n|---|---|\n| held_out | 0.2 |")  # a second eval replaces the first
    text = card.read_text()
    assert text.count("## Evaluation") == 1 and "| held_out | 0.2 |" in text and "0.1 |" not in text
    assert text.index("## Evaluation") < text.index("The chat template used in training")
    assert trained_from(text)[1] == settings


def test_preflight_finds_a_bad_task_before_training(tmp_path):
    from pipeline import storage
    from pipeline.errors import UserError
    from pipeline.evaluate.run import preflight

    out = storage.locate(tmp_path)
    cfg = FinetuneConfig.model_validate({"model": "m", "eval": {"enabled": True, "tasks": ["held_out", "gsm9k"]}})
    with pytest.raises(UserError, match="unknown task 'gsm9k'"):
        preflight(cfg.eval, out)
    preflight(FinetuneConfig.model_validate({"model": "m", "eval": {"tasks": ["gsm9k"]}}).eval, out)  # not enabled: nothing


def test_the_card_never_shows_the_judge(tmp_path):
    judge = {"backend": "vllm_server", "url": "http://judge:8000/v1", "model": "j", "api_key": "sk-secret-123"}
    cfg = FinetuneConfig.model_validate({"model": "m", "eval": {"enabled": True, "judge": judge}})
    assert cfg.eval.judge == judge
    card = write_model_card(storage.locate(tmp_path), cfg, storage.locate(tmp_path / "run"), {}, {})
    assert "sk-secret-123" not in card.read_text() and "judge:8000" not in card.read_text()
