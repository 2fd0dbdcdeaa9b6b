"""Contamination detection without Ray: normalisation, the index, spans, actions, benchmark loading."""

from __future__ import annotations

import gzip
import json
import random
import string

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.contamination import REGISTRY, BenchmarkItem, BenchmarkNotFound, NgramIndex, load_items, resolve
from filters.contamination.actions import cut_spans, cut_windows
from filters.contamination.benchmarks import items_from_rows
from filters.contamination.normalize import normalize, words, words_with_offsets

# lm-evaluation-harness's Janitor.normalize_string, the rule we must agree with on ASCII
_JANITOR = str.maketrans(string.ascii_lowercase + string.ascii_uppercase, string.ascii_lowercase * 2, string.punctuation)

QUESTION = (
    "A farmer has 17 sheep and buys 5 more every week for 3 weeks, then sells half of the flock "
    "at the market on Sunday. How many sheep does the farmer have left at the end?"
)
ANSWER = "He buys 5 * 3 = 15 sheep, so he has 17 + 15 = 32 and sells 16. #### 16"
FILLER = (
    "The river valley was quiet in the early morning and the fishermen were already out on the water. "
    "Nobody in the village remembered a winter as mild as this one, said the old baker to his customers. "
)


def _index(items, **kw):
    return NgramIndex.build(items, **kw)


def _item(*parts, benchmark="toy", item_id="0"):
    return BenchmarkItem(benchmark, item_id, tuple(parts))


@pytest.mark.parametrize(
    "text",
    [
        "Hello, World!  It's   (really) a TEST-case.",
        "a_b c#d $5.00 50% x+y=z <tag> [1] {k: v} ~home/`cmd` \"quoted\" back\\slash",
        "  leading and trailing\t\n whitespace\r\n",
        "...!!! ,,, --- ",
    ],
)
def test_normalisation_matches_lm_eval_harness_on_ascii(text):
    assert words(text) == text.translate(_JANITOR).split()


def test_normalisation_handles_unicode_punctuation_and_case():
    assert words("Janet’s DUCKS — «lay» 16 eggs…") == ["janets", "ducks", "lay", "16", "eggs"]
    assert normalize("Ünïcödé ÉTÉ") == "ünïcödé été"


def test_offsets_agree_with_the_fast_path_on_random_text():
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.punctuation + " \t\n’—é" * 3
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        ws, spans = words_with_offsets(text)
        assert ws == words(text)
        assert [normalize(text[a:b]) for a, b in spans] == ws


def test_verbatim_item_found_with_exact_span():
    index = _index([_item(QUESTION, ANSWER)])
    planted = QUESTION + " " + ANSWER
    text = FILLER + planted + " " + FILLER
    [hit] = index.scan([text])[0]
    assert hit.coverage == 1.0
    assert hit.matched == index.item_grams[0]
    assert [text[a:b] for a, b in hit.spans] == [planted]


@pytest.mark.parametrize(
    "edit",
    [
        str.upper,
        lambda q: q.replace(",", "").replace("?", " ?").replace(".", " !"),
        lambda q: "\n".join(q.split(" ")),
        lambda q: q.replace("17", "19"),
    ],
    ids=["case", "punctuation", "whitespace", "changed-number"],
)
def test_light_edits_are_found(edit):
    index = _index([_item(QUESTION, ANSWER)])
    [hit] = index.scan([FILLER + edit(QUESTION) + " " + FILLER])[0]
    assert 0 < hit.coverage <= 1


def test_partial_item_found_with_coverage_below_one():
    index = _index([_item(QUESTION, ANSWER)])
    [hit] = index.scan([FILLER + QUESTION + " " + FILLER])[0]
    question_grams = len(words(QUESTION)) - 13 + 1
    assert hit.matched == question_grams
    assert hit.coverage == pytest.approx(question_grams / index.item_grams[0])


def test_reordered_options_found_through_the_question():
    question = "Which of these rivers flows through the city of Vienna in central Europe today"
    choices = ["The Danube", "The Thames", "The Seine", "The Tiber"]
    index = _index([_item(question, *choices)])
    text = FILLER + question + "? A. The Tiber B. The Seine C. The Danube D. The Thames " + FILLER
    [hit] = index.scan([text])[0]
    assert hit.item.parts[0] == question


def test_clean_text_has_no_hit():
    index = _index([_item(QUESTION, ANSWER)])
    assert index.scan([FILLER * 5, "", "   "]) == [[], [], []]


def test_short_parts_are_indexed_whole_and_tiny_ones_not_at_all():
    six = "Name the largest planet of ours"  # 6 words: a question long enough to match whole
    choice = "the Immigration and Nationality Act of 1965"  # 7 words: a choice too short to stand alone
    long_choice = "the Immigration and Nationality Act signed in the year 1965"  # 10 words
    index = _index([
        _item(six, item_id="question"),
        _item("What is two plus two", choice, item_id="tiny"),
        _item("Which law?", long_choice, item_id="choice"),
    ], min_words=6, min_words_answer=8)
    assert index.stats.undetectable_items == 1
    [hit] = index.scan([FILLER + six.upper() + ". " + FILLER])[0]
    assert hit.item.item_id == "question" and hit.coverage == 1.0
    assert index.scan([FILLER + "Name the largest planet " + FILLER]) == [[]]
    assert index.scan([FILLER + choice + ". " + FILLER]) == [[]]
    assert [h.item.item_id for h in index.scan([FILLER + long_choice + ". " + FILLER])[0]] == ["choice"]


def test_grams_common_to_many_items_are_ignored():
    boiler = "Read the following passage carefully and then answer the question that comes after it"
    items = [_item(f"{boiler} item number {i} talks about topic {i * 7} with detail", item_id=str(i)) for i in range(6)]
    index = _index(items, max_item_frequency=5)
    assert index.stats.ignored_common > 0
    assert index.scan([FILLER + boiler + " " + FILLER]) == [[]]
    hits = index.scan([FILLER + items[3].parts[0] + " " + FILLER])[0]
    assert [h.item.item_id for h in hits] == ["3"]


def test_grams_found_in_the_background_corpus_are_ignored():
    everyday = "the quick brown fox jumps over the lazy dog while the farmer watches from the porch"
    items = [_item(everyday + " and then counts the sheep in the field", item_id="a")]
    plain = _index(items)
    with_background = _index(items, background=[FILLER + everyday + ". " + FILLER])
    assert plain.scan([everyday])[0]
    assert with_background.stats.ignored_background > 0
    assert with_background.scan([everyday]) == [[]]


def test_hits_across_a_batch_land_on_the_right_rows():
    index = _index([_item(QUESTION, item_id="q"), _item(ANSWER + " " + FILLER, item_id="a")])
    rows = [FILLER, "x " + QUESTION, "", FILLER.upper()]
    hits = index.scan(rows)
    assert [[h.item.item_id for h in row] for row in hits] == [["a"], ["q"], [], ["a"]]


def test_min_coverage_hides_weak_hits():
    index = _index([_item(QUESTION, ANSWER)])
    text = " ".join(words(QUESTION)[:14])
    assert index.scan([text])[0]
    assert index.scan([text], min_coverage=0.5) == [[]]


def test_cut_spans_removes_a_window_around_each_hit():
    text = "a" * 100 + "LEAK" + "b" * 100
    assert cut_spans(text, [(100, 104)], window=10) == "a" * 90 + "\n\n" + "b" * 90
    assert cut_windows([(5, 10), (12, 20), (90, 95)], 100, window=3) == [(2, 23), (87, 98)]


def test_cut_spans_drops_too_dirty_or_empty_rows():
    text = " ".join(f"w{i}" for i in range(100))
    spans = [(i * 20, i * 20 + 2) for i in range(5)]
    assert cut_spans(text, spans, window=0, max_cuts=4) is None
    assert cut_spans(text, spans, window=0, max_cuts=5) is not None
    assert cut_spans("short leak", [(0, 10)], window=5) is None


def test_remove_spans_leaves_no_indexed_gram():
    index = _index([_item(QUESTION, ANSWER)])
    text = FILLER * 4 + QUESTION + " " + ANSWER + " " + FILLER * 4
    [hit] = index.scan([text])[0]
    cleaned = cut_spans(text, hit.spans, window=50)
    assert cleaned and len(cleaned) < len(text)
    assert index.scan([cleaned]) == [[]]


def test_local_files_in_every_format_with_field_mapping(tmp_path):
    rows = [{"qid": "x1", "q": QUESTION, "opts": {"text": ["alpha", "beta"]}, "a": ANSWER, "n": 3}]
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(json.dumps(rows[0]).encode()))
    (tmp_path / "b.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    for name in ("b.jsonl.gz", "b.json", "b.parquet"):
        [spec] = resolve([{"path": str(tmp_path / name), "fields": ["q", "opts.text", "a"], "id_field": "qid"}])
        [item] = load_items(spec)
        assert item.item_id == "x1" and item.parts == (QUESTION, "alpha", "beta", ANSWER)
    (tmp_path / "c.csv").write_text("question,answer\n\"Is it, really?\",yes\n")
    [spec] = resolve([str(tmp_path / "c.csv")], fields=["question", "answer"])
    assert spec.name == "c" and load_items(spec) == [BenchmarkItem("c", "0", ("Is it, really?", "yes"))]


# One row in the shape each registered benchmark has on the Hub: the field mapping must find text in it.
HUB_ROWS = {
    "humaneval": {"task_id": "HumanEval/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n"},
    "mbpp": {"task_id": 11, "text": "Write a function.", "code": "def f(): pass", "test_list": ["assert f()"]},
    "gsm8k": {"question": "How many?", "answer": "2 #### 2"},
    "math": {"problem": "Solve $x+1=2$.", "solution": "$x=1$", "level": "Level 1"},
    "mmlu": {"question": "Q?", "subject": "s", "choices": ["a", "b", "c", "d"], "answer": 1},
    "arc": {"id": "Mercury_1", "question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"},
    "hellaswag": {"ind": 4, "ctx": "A man is", "endings": ["e1", "e2", "e3", "e4"], "label": "0"},
    "truthfulqa": {"question": "Q?", "best_answer": "b", "correct_answers": ["c"], "incorrect_answers": ["i"]},
    "bbh": {"input": "not ( True ) is", "target": "False"},
    "ifeval": {"key": 1000, "prompt": "Write a 300+ word summary.", "instruction_id_list": ["x"]},
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_maps_hub_rows_to_items(name):
    spec = REGISTRY[name]
    assert spec.hub_id
    [item] = items_from_rows(spec, [HUB_ROWS[name]], spec.fields)
    assert len(item.parts) >= 1 and all(isinstance(p, str) and p for p in item.parts)
    if spec.id_field:
        assert item.item_id == str(HUB_ROWS[name][spec.id_field])


def test_unknown_benchmark_or_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(BenchmarkNotFound, match="unknown benchmark 'gsm9k'"):
        resolve(["gsm9k"])
    with pytest.raises(BenchmarkNotFound, match="not found"):
        resolve([str(tmp_path / "missing.jsonl")])
    with pytest.raises(BenchmarkNotFound, match="name the fields"):
        resolve([{"path": str(tmp_path / "x.jsonl")}])


def test_a_benchmark_that_gives_no_item_is_an_error_not_a_clean_report(tmp_path):
    """A misnamed field used to index nothing, and every data set then came out clean."""
    (tmp_path / "b.jsonl").write_text('{"problem": "What is 2 + 2?", "id": 1}\n')
    (tmp_path / "empty.jsonl").write_text("")
    [misnamed] = resolve([{"path": str(tmp_path / "b.jsonl"), "fields": ["question"]}])
    with pytest.raises(BenchmarkNotFound, match=r"no row has text in question \(its first row has: problem, id\)"):
        load_items(misnamed)
    [empty] = resolve([{"path": str(tmp_path / "empty.jsonl"), "fields": ["question"]}])
    with pytest.raises(BenchmarkNotFound, match="'empty': no rows"):
        load_items(empty)
    [right] = resolve([{"path": str(tmp_path / "b.jsonl"), "fields": ["problem"]}])
    assert [i.parts for i in load_items(right)] == [("What is 2 + 2?",)]


def test_shared_benchmarks_load_from_the_builtin_layouts(shared_data):
    root = shared_data / "benchmarks"
    sizes = {name: len(load_items(REGISTRY[name], root)) for name in ("humaneval", "gsm8k", "mmlu")}
    assert sizes == {"humaneval": 164, "gsm8k": 1319, "mmlu": 14042}


def test_real_gsm8k_items_found_verbatim_and_partial(shared_data):
    items = load_items(REGISTRY["gsm8k"], shared_data / "benchmarks")[:200]
    index = NgramIndex.build(items)
    picked = items[::40]
    texts = [FILLER + it.parts[0] + "\n" + it.parts[1] + FILLER for it in picked]
    texts += [FILLER + it.parts[0] + FILLER for it in picked]
    found = index.scan(texts)
    for it, hits in zip(picked + picked, found):
        assert it.item_id in {h.item.item_id for h in hits}


def test_short_multiple_choice_items_need_their_choices_nearby():
    item = _item("What are histones?", "Lipids", "Carbohydrates", "Nucleotides", "Proteins", item_id="h")
    index = _index([item])
    assert index.stats.undetectable_items == 0 and index.stats.confirmed_items == 1
    printed = "What are histones?\nA. Lipids\nB. Carbohydrates\nC. Nucleotides\nD. Proteins\nAnswer: D"
    [hit] = index.scan([FILLER + printed + " " + FILLER])[0]
    assert hit.item.item_id == "h" and hit.spans == ((len(FILLER), len(FILLER) + len("What are histones?")),)
    assert index.scan([FILLER + "What are histones? They are proteins that package DNA. " + FILLER]) == [[]]


def test_vectorised_words_equal_the_python_rule_on_random_unicode():
    from filters.contamination.normalize import arrow_words

    rng = random.Random(3)
    chars = [chr(c) for c in [*range(0, 0x250), *range(0x370, 0x400), *range(0x2000, 0x2070),
                              0x3000, 0xA0, 0x1680, 0x200B, 0xFEFF, 0x130, 0x3A3, 0x301, 0x4E00, 0xFF10, 0x2160, 0xBD]]
    texts = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 40))) for _ in range(2000)]
    flat, counts = arrow_words(texts)
    flat = flat.to_pylist()
    at = 0
    for text, n in zip(texts, counts):
        assert flat[at:at + n] == words(text), repr(text)
        at += n


def test_text_arrow_cannot_take_is_scanned_by_the_python_rule():
    index = _index([_item(QUESTION, ANSWER)])
    [hit] = index.scan([FILLER + "\ud800 " + QUESTION])[0]
    assert hit.coverage < 1 and hit.matched == len(words(QUESTION)) - 12


def test_build_index_reads_background_files_and_names_missing_ones(tmp_path):
    from filters.contamination import build_index

    everyday = "the quick brown fox jumps over the lazy dog while the farmer watches from the porch"
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"q": everyday + " and then counts the sheep in the field"}) + "\n")
    (tmp_path / "bg.txt").write_text(FILLER + everyday + ". " + FILLER)
    (tmp_path / "bg.jsonl").write_text(json.dumps({"text": FILLER}) + "\n")
    custom = [{"path": str(bench), "fields": ["q"]}]
    index, sizes = build_index(custom, background=[tmp_path / "bg.txt", tmp_path / "bg.jsonl"])
    assert sizes == {"b": 1} and index.stats.ignored_background > 0
    assert index.scan([everyday]) == [[]]
    with pytest.raises(BenchmarkNotFound, match="background corpus not found"):
        build_index(custom, background=[tmp_path / "nope.txt"])
