"""Language ID with the bundled lid.176 model on real text, and the keep/min-score rule."""

import csv
import json

import pytest

from filters.language import LANG_LOW_SCORE, LANG_NOT_KEPT, LanguageFilter, LanguageIdentifier, bundled_model_path


@pytest.fixture(scope="module")
def lid():
    return LanguageIdentifier()


def test_model_is_bundled_offline():
    assert bundled_model_path().is_file()


def test_english_news(lid, shared_data):
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        texts = [f"{title}. {description}" for _, title, description in list(csv.reader(f))[:200]]
    langs, scores = lid.predict(texts)
    assert langs.count("en") > 0.95 * len(texts)
    assert sum(scores) / len(scores) > 0.8
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_german_pages_with_newlines(lid, shared_data):
    gold = json.loads((shared_data / "extraction" / "trafilatura_eval" / "evaldata.json").read_text())
    german = [" \n".join(item["with"]) for url, item in gold.items() if url.endswith(".de/") or ".de/" in url][:100]
    langs, _ = lid.predict(german)
    assert langs.count("de") > 0.8 * len(german)


def test_other_scripts_and_short_instructions(lid):
    langs, scores = lid.predict(
        [
            "Écrivez un poème sur la mer et le vent du soir.",
            "Escribe una función que invierta una cadena de texto.",
            "Напишите короткий рассказ о зимнем лесе.",
            "请写一首关于秋天的短诗。",
            "Write a haiku about autumn leaves.",
            "",
        ]
    )
    assert langs[:5] == ["fr", "es", "ru", "zh", "en"]
    assert scores[5] < scores[4]


def test_filter_rules():
    keep_en = LanguageFilter(keep=frozenset({"en"}), min_score=0.65)
    assert keep_en.reason("en", 0.65) is None
    assert keep_en.reason("en", 0.64) == LANG_LOW_SCORE
    assert keep_en.reason("de", 0.99) == LANG_NOT_KEPT
    any_lang = LanguageFilter(min_score=0.5)
    assert any_lang.reason("sw", 0.5) is None
    assert any_lang.reason("sw", 0.49) == LANG_LOW_SCORE
