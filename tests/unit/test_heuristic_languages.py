"""Rules judge a text in its language: stop words per language, and rules that do not know a
language are skipped and named instead of dropping the text."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from filters.c4 import C4
from filters.fineweb import FineWeb
from filters.gopher import GopherQuality, GopherRepetition
from filters.heuristics import Heuristics
from filters.stopwords import STOP_WORDS
from filters.textstats import TextStats, count_sentences


def only(family_cls, rule: str, **thresholds):
    """The family with every rule but `rule` switched off."""
    others = [name for name in family_cls().rule_names() if name != rule]
    return family_cls(family_cls.Config(**thresholds), disabled=others)


def stop_word_verdict(text: str, lang: str, **thresholds):
    reason, _, skipped = only(GopherQuality, "stop_words", **thresholds).apply(TextStats(text, lang))
    return reason, skipped


def _all_but(rule: str) -> list[str]:
    return [f"gopher_quality.{r}" for r in GopherQuality().rule_names() if r != rule]


# One everyday sentence per language, holding at least two of the language's stop words and
# none of Gopher's English ones.
SENTENCES = {
    "de": "Der Hund schläft im Haus und die Katze spielt im Garten.",
    "fr": "Le chat dort dans la maison et le chien joue dans le jardin.",
    "es": "El perro duerme en la casa y el gato juega en el jardín.",
    "it": "Il cane dorme nella casa e il gatto gioca in giardino.",
    "pt": "O cão dorme na casa e o gato brinca no jardim.",
    "nl": "De hond slaapt in het huis en de kat speelt in de tuin.",
    "pl": "Pies śpi w domu, a kot bawi się w ogrodzie.",
    "sv": "Hunden sover i huset och katten leker i trädgården.",
}


@pytest.mark.parametrize("lang", SENTENCES)
def test_a_sentence_passes_with_its_languages_stop_words_and_fails_with_englishs(lang):
    assert stop_word_verdict(SENTENCES[lang], lang) == (None, [])
    assert stop_word_verdict(SENTENCES[lang], "en") == ("gopher_quality.stop_words", [])


def test_german_needs_two_distinct_german_stop_words():
    assert stop_word_verdict("Der Hund und die Katze.", "de") == (None, [])  # der, und, die
    assert stop_word_verdict("Der Hund schläft.", "de") == ("gopher_quality.stop_words", [])  # der only
    assert stop_word_verdict("Der Hund, der Hund, der Hund.", "de") == ("gopher_quality.stop_words", [])  # one, thrice
    assert stop_word_verdict("Der Hund und die Katze.", "de", min_stop_words=4) == ("gopher_quality.stop_words", [])


def test_language_tags_are_read_by_their_primary_subtag():
    for tag in ("de", "DE", "de-AT", "de_CH"):
        assert Heuristics.build(["gopher_quality"], disable=_all_but("stop_words")).check(SENTENCES["de"], tag).reason is None


def test_a_language_without_stop_words_skips_the_rule_and_says_so():
    swahili = "Mbwa analala ndani ya nyumba na paka anacheza bustanini."
    assert "sw" not in STOP_WORDS
    assert stop_word_verdict(swahili, "sw") == (None, ["gopher_quality.stop_words"])
    assert stop_word_verdict(swahili, "unknown") == (None, ["gopher_quality.stop_words"])
    assert stop_word_verdict(swahili, "en") == ("gopher_quality.stop_words", [])


def test_a_skipped_rule_is_named_only_when_the_chain_reaches_it():
    chain = Heuristics.build(["gopher_quality"])
    short = "Mbwa analala ndani ya nyumba."  # fails word_count, which comes before stop_words
    assert chain.check(short, "sw") == ("gopher_quality.word_count", short, [])


def test_stop_words_per_language_override_add_or_switch_off_the_built_in_lists():
    text = "Mbwa analala ndani ya nyumba na paka anacheza bustanini."
    assert stop_word_verdict(text, "sw", stop_words={"sw": ["ya", "na"]}) == (None, [])
    assert stop_word_verdict(SENTENCES["de"], "de", stop_words={"de": ["oder", "aber"]})[0] == "gopher_quality.stop_words"
    assert stop_word_verdict(SENTENCES["fr"], "fr", stop_words={"de": ["oder"]}) == (None, [])  # others keep theirs
    assert stop_word_verdict(SENTENCES["de"], "de", stop_words={"DE": []}) == (None, ["gopher_quality.stop_words"])


def test_a_single_stop_word_list_is_refused_with_the_per_language_form():
    with pytest.raises(ValidationError, match=r"per language, e\.g\. \{en: "):
        GopherQuality.Config(stop_words=["the", "and"])


# Japanese is written without spaces between words: a whitespace token is a whole sentence.
JAPANESE = (
    "今日はとても良い天気です。公園には子どもたちがたくさんいて、楽しそうに遊んでいます。"
    "私は友達と一緒に川の近くを散歩しました。帰りに駅の前の店でコーヒーを飲みました。"
    "夜は家族と一緒に夕ご飯を食べました。"
)
JAPANESE_PAGE = JAPANESE + "\n" + JAPANESE.replace("今日", "昨日").replace("コーヒー", "お茶")


def test_japanese_prose_is_kept_when_judged_as_japanese_and_the_word_rules_are_named():
    chain = Heuristics.build()
    assert chain.check(JAPANESE_PAGE).reason == "gopher_quality.word_count"  # two "words" judged as English
    verdict = chain.check(JAPANESE_PAGE, "ja")
    assert verdict.reason is None and verdict.text == JAPANESE_PAGE
    assert verdict.skipped == [
        *(f"gopher_repetition.{r}" for r in ("top_2gram", "top_3gram", "top_4gram", *(f"dup_{n}gram" for n in range(5, 11)))),
        *(f"gopher_quality.{r}" for r in ("word_count", "mean_word_length", "symbol_word_ratio", "alpha_words", "stop_words")),
        "c4.line_long_word",
        "c4.line_min_words",
        "fineweb.short_lines",
        "fineweb.newline_word_ratio",
    ]


JAPANESE_LINES = [f"これは{n}番目の行です。" for n in range(6)]


@pytest.mark.parametrize(
    "family,rule,text",
    [
        (GopherRepetition, "dup_lines", "\n".join(JAPANESE_LINES + JAPANESE_LINES[:4])),
        (GopherRepetition, "dup_paragraph_chars", "\n\n".join(JAPANESE_LINES + JAPANESE_LINES[:4])),
        (GopherQuality, "ellipsis_lines", "\n".join(line + "…" for line in JAPANESE_LINES)),
        (FineWeb, "dup_line_chars", "\n".join(JAPANESE_LINES + JAPANESE_LINES[:1])),
    ],
)
def test_rules_on_lines_and_characters_judge_every_language(family, rule, text):
    assert only(family, rule).apply(TextStats(text, "ja"))[::2] == (f"{family.name}.{rule}", [])


def test_sentences_end_with_the_marks_and_quotes_of_other_languages():
    assert count_sentences("今日は晴れです。明日は雨です。") == 2
    assert count_sentences("Er sagte: „Ja.“ Dann ging er. Sie blieb.") == 3
    assert count_sentences("Il a dit : « Oui. » Puis il est parti.") == 2
    assert count_sentences("यह एक वाक्य है। यह दूसरा है।") == 2


@pytest.mark.parametrize(
    "lang,line",
    [("de", "Er sagte: „Das machen wir morgen.“"), ("fr", "Il a répondu : « Nous verrons bien. »"), ("ja", "彼は「明日にしましょう」と言いました。")],
)
def test_c4_keeps_lines_that_end_a_sentence_in_other_typographies(lang, line):
    body = [f"Line number {n} is here." for n in range(5)]
    reason, stats, _ = C4().apply(TextStats("\n".join([*body, line]), lang))
    assert reason is None and stats.text.splitlines() == [*body, line]


def test_c4_skips_the_punctuation_rules_for_thai_which_marks_no_sentence_end():
    thai = "ประเทศไทยตั้งอยู่ในเอเชียตะวันออกเฉียงใต้ มีกรุงเทพมหานครเป็นเมืองหลวง และมีประชากรหลายล้านคน"
    assert C4().apply(TextStats(thai, "en"))[0] == "c4.min_sentences"
    reason, stats, skipped = C4().apply(TextStats(thai, "th"))
    assert reason is None and stats.text == thai
    assert skipped == ["c4.line_long_word", "c4.line_terminal_punct", "c4.line_min_words", "c4.min_sentences"]
