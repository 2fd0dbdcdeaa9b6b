"""The held-out split by lineage, on rows made by the pipeline's own stage code, and its exact rules."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from generators import prompts
from generators.evol_instruct import EvolConfig, EvolInstruct
from generators.self_instruct import SelfInstruct, SelfInstructConfig, load_seed_tasks
from pipeline.records import DROP_REASON, stable_id
from pipeline.stage import StageContext
from pipeline.train.data import read_records
from pipeline.train.split import families, split_by_lineage
from stages.evol_instruct import EvolInstructStage
from stages.llm_support import INSTRUCTION_SCHEMA, instruction_row
from stages.reweight import apply_factors
from stages.self_instruct import SelfInstructStage
from tests.unit.synthetic.synthetic_fakes import FakeClient, prompt_text

ANSWER = "Start from the definition, work through one example step by step, and check the result against a second case."
WORDS = ("river galaxy recipe tax poem violin protein orbit ledger sonnet glacier budget verb enzyme castle tariff "
         "lemon quantum harbor novel algebra melody forest vaccine marble rhythm comet bridge canyon pepper").split()


def _script(rng: random.Random):
    """A teacher for both generators: novel Self-Instruct proposals with two instances, evolutions that add a step."""

    def script(request):
        text = prompt_text(request)
        if text.startswith(prompts.IS_CLASSIFICATION.text[:40]):
            return "No"
        if text.startswith(prompts.INSTANCES_INPUT_FIRST.text[:40]):
            return "Example 1\nInput: the first case\nOutput: " + ANSWER + "\nExample 2\nInput: another case\nOutput: " + ANSWER
        if text.startswith(prompts.EVOL_EQUALITY.text[:30]):
            return "Different"
        if prompts.EVOL_GIVEN in text:
            instruction = text.split(prompts.EVOL_GIVEN + "\n", 1)[1].split("\n\n" + prompts.EVOL_NEW)[0]
            return instruction + " Then justify each step."
        if text.startswith(prompts.SELF_INSTRUCT_PROPOSE.text[:40]):
            return " " + "\n".join(f"{9 + i}. " * bool(i) + "Write about " + " ".join(rng.sample(WORDS, 8)) for i in range(3))
        return ANSWER

    return script


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    """Instruction shards as a synthetic run writes them: seed rows and their Evol-Instruct descendants,
    Self-Instruct tasks with two instances each, all through a reweight stage that copies rows; with
    each row's true family, known from how it was made."""
    work = tmp_path_factory.mktemp("split")
    ctx = StageContext("4-evol_instruct", str(work), str(work))
    seeds = load_seed_tasks(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")[:12]
    seed_rows = [instruction_row(stable_id("seed", s.instruction), [{"role": "user", "content": s.instruction},
                                 {"role": "assistant", "content": s.instances[0]["output"]}], None, None, "seeds", {})
                 for s in seeds]  # fmt: skip
    truth = {r["id"]: r["id"] for r in seed_rows}

    client = FakeClient(_script(random.Random(0)))
    evol = EvolInstructStage(EvolInstructStage.Config(rounds=3), ctx)
    evol.evol = EvolInstruct(client, EvolConfig(rounds=3))
    evolved = [r for r in evol.process_batch(pa.Table.from_pylist(seed_rows, INSTRUCTION_SCHEMA)).to_pylist()
               if r[DROP_REASON] is None]
    for r in evolved:
        truth[r["id"]] = r["id"].split(".e")[0]  # Evol-Instruct names descendants <root>.e<k>

    result = SelfInstruct(client, seeds, SelfInstructConfig(target=8, requests_per_round=2, instances_per_task=2)).run()
    self_instruct = SelfInstructStage(SelfInstructStage.Config(instances_per_task=2), ctx)
    for task in result.pooled:
        for row in self_instruct._rows(task, result.model):
            if row[DROP_REASON] is None:
                evolved.append(row)
                truth[row["id"]] = task.instruction

    table = pa.Table.from_pylist(evolved, INSTRUCTION_SCHEMA)
    copied = apply_factors(table, "source", {"seeds": 1.6, "self_instruct": 1.6}, 0, "5-reweight")
    copied = copied.filter(pa.compute.is_null(copied.column(DROP_REASON)))
    pq.write_table(copied, work / "part-00000.parquet")
    rows = read_records([work / "part-00000.parquet"])
    for r in rows:
        truth[r["id"]] = truth[r["id"].split("~")[0]]  # reweight names copies <id>~<stage>~<k>
    return rows, [truth[r["id"]] for r in rows]


def _prompt(row: dict) -> str:
    return json.dumps([m for m in row["messages"] if m["role"] != "assistant"])


def _mixed(labels: list[str], train: list[int], held: list[int]) -> set[str]:
    return {labels[i] for i in train} & {labels[i] for i in held}


def test_no_family_of_generated_rows_lands_on_both_sides(shards):
    rows, truth = shards
    sizes = {label: truth.count(label) for label in truth}
    assert len(rows) > 80 and max(sizes.values()) >= 6 and len(sizes) == 20  # 12 seed lineages, 8 Self-Instruct tasks
    assert any(r.get("copy_index") for r in rows) and any(r.get("parent_id") for r in rows)

    for seed in range(5):
        split = split_by_lineage(rows, [_prompt(r) for r in rows], 0.2, seed)
        assert not _mixed(truth, split.train, split.held_out)
        assert sorted(split.train + split.held_out) == list(range(len(rows)))
        assert abs(len(split.held_out) - 0.2 * len(rows)) <= max(sizes.values())
        assert split.held_out_families == len({truth[i] for i in split.held_out})
        assert split.train_families == len({truth[i] for i in split.train})

    # What split_held_out did before: a seeded shuffle of rows, blind to lineage.
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
    n = round(0.2 * len(rows))
    assert _mixed(truth, perm[n:], perm[:n])


def test_links_join_rows_and_nothing_else_does():
    rows = [
        {"id": "a"},
        {"id": "a.e1", "parent_id": "a"},
        {"id": "a.e3", "parent_id": "a.e2", "meta": json.dumps({"root_id": "a"})},  # a.e2 was filtered out
        {"id": "a~5-reweight~1", "origin_id": "a"},
        {"id": "t1", "meta": json.dumps({"stage": "self_instruct", "instruction": "Sort the list."})},
        {"id": "t2", "meta": json.dumps({"stage": "self_instruct", "instruction": "Sort the list."})},
        {"id": "p1", "meta": json.dumps({"instruction_id": "q"})},
        {"id": "q.s1", "parent_id": "q"},
        {"id": "d1", "dup_cluster": "d0"},
        {"id": "d0", "dup_cluster": "d0"},
        {"id": "same1"},
        {"id": "same2"},
        {"id": "alone", "meta": "not json"},
    ]
    contents = [f"c{i}" for i in range(len(rows))]
    contents[11] = contents[10]  # one prompt, two rows
    assert families(rows, contents) == [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]


def test_preference_pairs_of_one_prompt_stay_together():
    prompt = [{"role": "user", "content": "Name a river."}]
    rows = [{"id": f"pair{i}", "meta": json.dumps({"instruction_id": f"i{i}~5-reweight~{i}"}), "prompt": prompt}
            for i in range(3)]
    rows += [{"id": f"other{i}", "prompt": [{"role": "user", "content": f"Question {i}"}]} for i in range(9)]
    contents = [json.dumps(r["prompt"]) for r in rows]
    held_whole = 0
    for seed in range(40):
        split = split_by_lineage(rows, contents, 0.25, seed)
        assert not ({0, 1, 2} & set(split.held_out) and {0, 1, 2} & set(split.train))
        held_whole += {0, 1, 2} <= set(split.held_out)
    assert held_whole  # the family is held out, whole, under some seeds


def test_split_edges():
    rows = [{"id": str(i)} for i in range(10)]
    contents = [str(i) for i in range(10)]
    assert split_by_lineage(rows, contents, 0.0, 0).held_out == []
    assert len(split_by_lineage(rows, contents, 0.01, 0).held_out) == 1  # at least one held out when asked
    one_family = [{"id": str(i), "origin_id": "x"} for i in range(10)]
    split = split_by_lineage(one_family, contents, 0.5, 0)
    assert split.held_out == [] and len(split.train) == 10  # a single family cannot be split
    big = [{"id": str(i), "origin_id": "big" if i < 8 else None} for i in range(10)]
    split = split_by_lineage(big, contents, 0.5, 0)
    assert split.train and split.held_out
