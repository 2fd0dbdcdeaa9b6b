"""The peer's whole process, as a rensa user writes it: read a JSONL file, MinHash each document's
word 5-grams with `RMinHash`, keep the first of each `RMinHashLSH` hit, write the kept rows as JSONL.

Same settings as our stage (112 permutations in 14 bands, lowercased word 5-grams, threshold 0.8).
bench_dedup.py e2e times this script as a process, start to exit, beside `pipeline run`.

    python benchmarks/rensa_dedup.py corpus.jsonl kept.jsonl
"""

import json
import sys

from rensa import RMinHash, RMinHashLSH


def shingles(text: str, n: int = 5) -> list[str]:
    words = text.lower().split()
    if len(words) < n:
        return [" ".join(words)]
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def main(source: str, target: str) -> None:
    lsh = RMinHashLSH(threshold=0.8, num_perm=112, num_bands=14)
    kept = removed = 0
    with open(source, encoding="utf-8") as f, open(target, "w", encoding="utf-8") as out:
        for key, line in enumerate(f):
            row = json.loads(line)
            m = RMinHash(num_perm=112, seed=1)
            m.update(shingles(row["text"]))
            if lsh.query(m):
                removed += 1
                continue
            lsh.insert(key, m)
            out.write(line)
            kept += 1
    print(f"kept {kept}, removed {removed}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
