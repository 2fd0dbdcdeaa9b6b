"""The held-out split by lineage: rows that share an ancestor stay on one side.

A seeded shuffle of rows flatters the eval loss on generated data: Evol-Instruct's descendants of
one instruction, the instances of one Self-Instruct task, a `reweight` stage's copies of one row and
the samples of one prompt are near-copies of each other, so any of them held out is partly trained
on. Rows are joined into families (union-find) by every link the pipeline's stages write:

- `id`, `origin_id` (reweight: a copy's original), `parent_id` (Evol-Instruct's parent, respond's
  instruction for several samples, back-translation's document), `dup_cluster` (dedup's cluster);
- in `meta`: `root_id` (Evol-Instruct's lineage root), `instruction_id` (the instruction a preference
  pair was judged on), and a Self-Instruct task's `instruction` (shared by its instances);
- the same content: one prompt (conversations, preference pairs) or one text (documents).

Ids meet ids whatever column they come from (a parent's `id` is its child's `parent_id`), so a chain
is one family even when rows in the middle of it were filtered out, as long as the links that remain
reach each other. Whole families are then assigned, in a seeded order, until the held-out side holds
about the asked share of rows.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from pipeline.records import loads_meta

ID_COLUMNS = ("id", "origin_id", "parent_id", "dup_cluster")
META_IDS = ("root_id", "instruction_id")
SELF_INSTRUCT = "self_instruct"


def lineage_keys(row: dict, content: str) -> list[str]:
    """Every key that joins `row` to its relatives; `content` is what makes two rows the same item."""
    keys = ["content:" + hashlib.blake2b(content.encode(), digest_size=16).hexdigest()]
    keys += [f"id:{row[c]}" for c in ID_COLUMNS if row.get(c) not in (None, "")]
    meta = _meta(row.get("meta"))
    keys += [f"id:{meta[k]}" for k in META_IDS if isinstance(meta.get(k), str) and meta[k]]
    if meta.get("stage") == SELF_INSTRUCT and isinstance(meta.get("instruction"), str):
        keys.append(f"task:{meta['instruction']}")
    return keys


def _meta(value) -> dict:
    """`meta` as the pipeline writes it (a JSON string), or a dict from a user's own files; a row whose
    `meta` cannot be read only loses the links it would have given."""
    if isinstance(value, dict):
        return value
    try:
        meta = loads_meta(value) if isinstance(value, str) else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def families(rows: list[dict], contents: list[str]) -> list[int]:
    """The family of every row (0, 1, ... in order of first appearance)."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, (row, content) in enumerate(zip(rows, contents)):
        for key in lineage_keys(row, content):
            j = owner.setdefault(key, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(find(i), len(numbers)) for i in range(len(rows))]


@dataclass
class Split:
    """Row indices of each side, and the family counts the model card reports."""

    train: list[int]
    held_out: list[int]
    train_families: int
    held_out_families: int

    def summary(self) -> dict:
        return {"train_families": self.train_families, "held_out_families": self.held_out_families}


def split_by_lineage(rows: list[dict], contents: list[str], fraction: float, seed: int) -> Split:
    """Whole families to each side, the held-out side near `fraction` of the rows.

    Families are taken in a seeded order; one that would overshoot the target by more than it helps
    is passed over, so a huge family cannot take the held-out side alone. At least one family is held
    out when a fraction is asked and there are two or more; the training side is never left empty.
    """
    family = families(rows, contents)
    members: dict[int, list[int]] = {}
    for i, f in enumerate(family):
        members.setdefault(f, []).append(i)
    if fraction <= 0 or len(members) < 2:
        return Split(list(range(len(rows))), [], len(members), 0)
    order = list(members)
    random.Random(seed).shuffle(order)
    target = max(1, round(fraction * len(rows)))
    held: list[int] = []
    size = 0
    for f in order:
        n = len(members[f])
        if size >= target:
            break
        if size + n - target <= target - size and size + n < len(rows):
            held.append(f)
            size += n
    if not held:
        held.append(min(order, key=lambda f: len(members[f])))
    chosen = set(held)
    return Split(
        [i for i, f in enumerate(family) if f not in chosen],
        [i for i, f in enumerate(family) if f in chosen],
        len(members) - len(chosen),
        len(chosen),
    )
