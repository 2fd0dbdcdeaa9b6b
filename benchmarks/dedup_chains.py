"""A planted corpus made to chain, and the scores that tell chaining apart (bench_dedup.py chains).

Each family starts from a real document A of at least 150 words; B replaces k isolated words of A,
C replaces k other isolated words of B (D, for a family of four, k more), so neighbours sit at a
chosen Jaccard (0.82 to 0.9) and the ends below it: with A~B and B~C at 0.85, J(A, C) is about 0.72.
Unique documents of the same kind stand beside the families. The ground truth is every pair at
Jaccard >= threshold, found exactly (bench_dedup.true_pairs), so the planted Jaccards need not be
exact.
"""

from __future__ import annotations

import random

STEP_JACCARDS = (0.82, 0.85, 0.9)
WORD = 5  # word 5-grams: a replaced word, 5 apart from the others, removes 5 shingles


def long_texts(texts: list[str], min_words: int = 150) -> list[str]:
    """Real texts joined until each has at least `min_words` words."""
    out, current = [], []
    for t in texts:
        current += t.split()
        if len(current) >= min_words:
            out.append(" ".join(current))
            current = []
    return out


def _step(words: list[str], taken: set[int], jaccard: float, rng: random.Random, tag: str) -> list[str]:
    """Replace k words, each at least WORD positions from any replaced before, so the copy's shingle
    Jaccard with `words` is (S - 5k) / (S + 5k) ~ `jaccard` (S shingles)."""
    s = len(words) - WORD + 1
    k = max(1, round(s * (1 - jaccard) / (WORD * (1 + jaccard))))
    free = [p for p in range(len(words)) if all(abs(p - q) >= WORD for q in taken)]
    rng.shuffle(free)
    chosen: list[int] = []
    for p in free:
        if len(chosen) == k:
            break
        if all(abs(p - q) >= WORD for q in chosen):
            chosen.append(p)
    out = list(words)
    for n, p in enumerate(chosen):
        out[p] = f"{tag}{n}x"
    taken.update(chosen)
    return out


def chain_corpus(texts: list[str], families: int, unique: int, seed: int = 0) -> tuple[list[dict], list[list[str]]]:
    """Documents (id, text) and the ids of each family in chain order."""
    rng = random.Random(seed)
    pool = long_texts(texts)
    rng.shuffle(pool)
    if len(pool) < families + unique:
        raise SystemExit(f"only {len(pool)} long texts for {families} families and {unique} unique documents")
    docs, chains = [], []
    for f in range(families):
        words = pool[f].split()
        length = rng.choice((3, 3, 4))
        jaccard = rng.choice(STEP_JACCARDS)
        taken: set[int] = set()
        ids = []
        for m in range(length):
            if m:
                words = _step(words, taken, jaccard, rng, f"f{f}m{m}w")
            ids.append(f"c{f:05d}{'abcd'[m]}")
            docs.append({"id": ids[-1], "text": " ".join(words)})
        chains.append(ids)
    for u in range(unique):
        docs.append({"id": f"u{u:06d}", "text": pool[families + u]})
    rng.shuffle(docs)
    return docs, chains


def chain_scores(docs: list[dict], clusters: dict[str, str], dup_of: dict[str, str], truth: dict, jaccard,
                 threshold: float) -> dict:
    """removal precision: removed documents whose survivor is at or above the threshold;
    pair recall: true pairs (J >= threshold) not both kept, so a reader no longer sees both;
    cluster recall: true pairs put in one cluster (bench_dedup.score's recall);
    pair precision: pairs of documents put in one cluster that are true pairs."""
    by_id = {d["id"]: d["text"] for d in docs}
    sure = sum(1 for d, s in dup_of.items() if tuple(sorted((d, s))) in truth or jaccard(by_id[d], by_id[s]) >= threshold)
    resolved = sum(1 for a, b in truth if a in dup_of or b in dup_of)
    together = sum(1 for a, b in truth if clusters.get(a, a) == clusters.get(b, b))
    members: dict[str, list[str]] = {}
    for i, c in clusters.items():
        members.setdefault(c, []).append(i)
    claimed = [tuple(sorted((x, y))) for ms in members.values() for k, x in enumerate(ms) for y in ms[k + 1:]]
    true_claims = sum(1 for p in claimed if p in truth or jaccard(by_id[p[0]], by_id[p[1]]) >= threshold)
    n = max(1, len(truth))
    return {"removal_precision": round(sure / max(1, len(dup_of)), 4), "pair_recall": round(resolved / n, 4),
            "cluster_recall": round(together / n, 4), "pair_precision": round(true_claims / max(1, len(claimed)), 4),
            "removed": len(dup_of), "below_threshold": len(dup_of) - sure}
