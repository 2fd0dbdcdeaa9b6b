"""The fast paths of shingling give what the plain definitions give: words of a batch's distinct
pieces equal the words of each normalised text, NFKC skipped on ASCII rows changes nothing, and
shingle hashes from shifted slices equal the per-shingle formula."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

import string

from filters.dedup.shingles import _normalize_pieces, combine_tokens, normalize, shingle_hash_xxh3, shingles, word_tokens

TEXTS = [
    "The quick brown fox, 2024-05-01: jumps!!",
    "  leading and trailing  \t\n",
    "",
    None,
    "!!! ... ???",
    "ﬁnance ＡＢＣ １２３ x² Ⅻ café cafe\u0301",  # NFKC: ligature, full width, superscript, roman numeral, combining mark
    "Ein kleiner Text über Äpfel\u00a0und\u2003Birnen",  # no-break and em spaces
    "tab\tsep\x1cunit\x1fsep\u0085next",
    "ΣΊΣΥΦΟΣ σίσυφος İstanbul",
    "word",
    "a b c d",
]


def test_words_equal_the_words_of_the_normalised_text():
    """Words from the distinct whitespace-cut pieces of a batch are the words of each whole text."""
    tok = word_tokens(TEXTS + TEXTS[::-1], keep_words=True)
    words = [tok.words[tok.offsets[i] : tok.offsets[i + 1]] for i in range(len(tok.offsets) - 1)]
    assert words == [t.split(" ") if t else [] for t in normalize(TEXTS + TEXTS[::-1]).to_pylist()]
    assert words[5][:3] == ["finance", "abc", "0"] and words[7] == ["tab", "sep", "unit", "sep", "next"]
    assert tok.values.tolist() == [xxhash.xxh3_64_intdigest(w.encode("utf-8")) for w in tok.words]


def test_nfkc_is_skipped_only_where_it_changes_nothing():
    """normalize with NFKC on every row, as the definition reads, equals normalize."""
    t = pc.utf8_normalize(pc.utf8_lower(pc.fill_null(pa.array(TEXTS, pa.string()), "")), "NFKC")
    t = pc.replace_substring_regex(t, r"\p{Nd}+", "0")
    t = pc.replace_substring_regex(t, r"[^\p{L}\p{N}\p{M}\t\n\v\f\r ]+", " ")
    expected = pc.binary_join(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(t)), " ")
    assert normalize(TEXTS).to_pylist() == expected.to_pylist()
    assert normalize(pa.chunked_array([TEXTS[:4], TEXTS[4:]], pa.string())).to_pylist() == expected.to_pylist()


def test_pieces_of_ascii_letters_and_punctuation_normalise_as_whole_texts_do():
    """The short cut for "(Word),"-like pieces (cut the punctuation, lower the letters) gives normalize's
    words, on pieces drawn to mix every ASCII punctuation mark with letters, digits, controls and accents."""
    rng = np.random.default_rng(0)
    alphabet = list(string.ascii_letters + string.punctuation + string.digits) + ["\x01", "\x1c", "é", "ß", "Σ", "ﬁ", "２"]
    pieces = ["".join(rng.choice(alphabet, int(k))) for k in rng.integers(0, 9, 20_000)]
    pieces += ["(Word),", "don't", "e-mail", "__init__", "U.S.", "...", "ABC", "x²"]
    assert _normalize_pieces(pa.array(pieces)).to_pylist() == normalize(pieces).to_pylist()
    assert _normalize_pieces(pa.array(["Plain", "(words),"])).to_pylist() == ["plain", "words"]


def test_shingle_hashes_equal_the_one_shingle_formula():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(["alpha", "beta", "gamma", "delta", "eps"], int(k))) for k in rng.integers(0, 12, 40)]
    sh = shingles(texts)
    for i, text in enumerate(texts):
        words = normalize([text])[0].as_py().split()
        grams = [" ".join(words[k : k + 5]) for k in range(len(words) - 4)] or ([" ".join(words)] if words else [])
        assert sh.of(i).tolist() == [shingle_hash_xxh3(g, 5) for g in grams]


def test_combine_tokens_mixes_full_and_short_shingles():
    values = np.arange(1, 8, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    starts, sizes = np.array([0, 1, 2, 5]), np.array([3, 3, 3, 2])
    out = combine_tokens(values, starts, sizes, 3)
    one_by_one = [combine_tokens(values, np.array([s]), np.array([k]), 3)[0] for s, k in zip(starts, sizes)]
    assert out.tolist() == one_by_one
    assert len(set(out.tolist())) == 4
