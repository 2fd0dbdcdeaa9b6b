"""Sentence-transformers models built on this machine: a static (bag-of-words) embedding, and a
tiny BERT.

No embedding model can be downloaded here, and the embedding paths must still run a real
`SentenceTransformer` end to end. A `StaticEmbedding` (a word-level tokenizer and one vector per
word, mean-pooled) is the smallest real one: saved as a folder, loaded by path like any Hub model.
With random vectors (the tests' model) two texts' cosine grows with the words they share, so
reordered or slightly edited copies are near 1 and unrelated texts near 0; the benchmark builds
one with trained word vectors instead (benchmarks/semdedup_model.py). The tiny BERT (random
weights, mean pooling) is the shape of the models users name (all-MiniLM and the like): attention
and layer norms, which is what a GPU computes differently from a CPU.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

UNKNOWN = "[UNK]"
WORD = re.compile(r"\w+")


def vocabulary(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """The lower-cased words of `texts`, most frequent first (ties by the word, so it is deterministic)."""
    counts = Counter(w for t in texts for w in WORD.findall(t.lower()))
    return sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))


def build(out_dir: str | Path, words: Sequence[str], vectors: np.ndarray | None = None, dim: int = 32, seed: int = 0) -> Path:
    """Save a StaticEmbedding model over `words` (row i of `vectors` is word i's vector; random if None)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {UNKNOWN: 0, **{w: i + 1 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNKNOWN))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("removed")])
    if vectors is None:
        vectors = np.random.default_rng(seed).standard_normal((len(words), dim))
    weights = np.vstack([np.zeros((1, vectors.shape[1])), vectors]).astype(np.float32)  # unknown words add nothing
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)], device="cpu")
    out = Path(out_dir)
    model.save(str(out))
    return out


def build_transformer(out_dir: str | Path, words: Sequence[str], dim: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised BERT over `words` (a WordPiece vocabulary of whole words) with mean pooling."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = Path(out_dir)
    bert = out / "bert"
    bert.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", UNKNOWN, "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + list(words))}
    tokenizer = Tokenizer(WordPiece(vocab, unk_token=UNKNOWN))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token=UNKNOWN, pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]").save_pretrained(bert)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=dim, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=4 * dim, max_position_embeddings=128)
    BertModel(config).save_pretrained(bert)
    encoder = Transformer(str(bert), max_seq_length=128)
    model = SentenceTransformer(modules=[encoder, Pooling(encoder.get_embedding_dimension(), "mean")], device="cpu")
    model.save(str(out))
    return out
