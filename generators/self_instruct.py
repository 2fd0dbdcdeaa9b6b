"""Self-Instruct (Wang et al., 2023): grow a pool of tasks from a few human-written seeds.

Each round sends a batch of prompts. A prompt lists 8 tasks (6 human seeds and, once the pool has
some, 2 generated ones) as a numbered list and lets the model continue it. Each proposal is
filtered (length, what a text-only model cannot do, how it starts, cut generations) and kept only
if its ROUGE-L F against every pooled instruction is at most 0.7; survivors join the pool at once,
so later proposals of the same batch are checked against them too. The model then decides whether
each new task is a classification task, which picks how its instances are written: output first
(a label, then an input for it, so labels stay balanced) or input first. Rounds repeat until the
pool holds `target` generated tasks, or until rounds stop producing anything new.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import string
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

from pydantic import Field, field_validator

from generators.client import EndpointFailing, LLMClient, Request, Response, SamplingParams
from generators.structured import StructuredOption
from generators.prompts import (
    INSTANCES_INPUT_FIRST,
    INSTANCES_OUTPUT_FIRST,
    IS_CLASSIFICATION,
    SELF_INSTRUCT_PROPOSE,
    SELF_INSTRUCT_PROPOSE_CLASSIFICATION,
    Prompt,
)
from generators.rouge import NoveltyIndex

# Things a text-only model cannot see or produce (the paper's list, plus the media it also names).
UNSUITABLE_WORDS = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)  # fmt: skip
_UNSUITABLE_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in UNSUITABLE_WORDS) + r")\b", re.IGNORECASE)
_ITEM_SPLIT = re.compile(r"\n\d+\s?\. ")

# The formats the parsing rules read, as regexes for guided decoding (`structured`). A line is at
# most 600 characters; a task starts with a letter (the rules drop one starting with punctuation).
_LINE = r"[^\n]{1,600}"
_TASK = r"[A-Za-z][^\n]{2,600}"
_IS_CLASSIFICATION_FORMAT = r" ?(Yes|No)"


def proposals_format(items: int) -> str:
    """The continuation of a numbered list: the current item, then up to `items - 1` more."""
    return rf" {_TASK}(\n[0-9]{{1,2}}\. {_TASK}){{0,{max(items - 1, 0)}}}"


def instances_format(output_first: bool, count: int) -> str:
    """Up to `count` instances as `format_instances` writes them, one line per field (a multi-line
    output, code say, is cut to its first line when guided)."""
    first, more = (("Label: ", "Label: ") if output_first else ("Example 1\\n", "Example [0-9]\\n"))
    fields = rf"{_LINE}\nInput: {_LINE}" if output_first else rf"Input: {_LINE}\nOutput: {_LINE}"
    return rf"{first}{fields}(\n{more}{fields}){{0,{count - 1}}}"


@dataclasses.dataclass
class SeedTask:
    instruction: str
    instances: list[dict] = dataclasses.field(default_factory=list)  # [{"input", "output"}]
    is_classification: bool | None = None
    id: str | None = None


class SelfInstructOptions(StructuredOption):
    """How the pool grows and what joins it: the `self_instruct` stage's options."""

    target: int = Field(default=100, ge=1, description="generated tasks to pool before stopping")
    prompt_tasks: int = Field(default=8, ge=2, description="tasks shown in each prompt")
    pool_tasks: int = Field(default=2, ge=0, description="of which drawn from the generated pool once it has some")
    requests_per_round: int = Field(default=8, ge=1, description="prompts sent concurrently per round")
    rouge_threshold: float = Field(default=0.7, gt=0, le=1, description="drop a proposal whose ROUGE-L F to a pooled task exceeds this")
    min_words: int = Field(default=4, ge=1)
    max_words: int = Field(default=150, ge=1)
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=0.5, gt=0, le=1)
    max_tokens: int = Field(default=1024, ge=16, description="tokens per proposal list")
    instance_max_tokens: int = Field(default=512, ge=16)
    instances_per_task: int = Field(default=1, ge=1, description="rows (instances) kept per task")
    classification_only: bool = Field(default=False, description="prompt with classification seeds only")
    max_stale_rounds: int = Field(default=5, ge=1, description="stop after this many rounds without a new task")

    @field_validator("pool_tasks")
    @classmethod
    def _room_for_seeds(cls, pool_tasks: int, info) -> int:
        prompt_tasks = info.data.get("prompt_tasks")
        if prompt_tasks is not None and pool_tasks >= prompt_tasks:
            raise ValueError(f"pool_tasks ({pool_tasks}) must be below prompt_tasks ({prompt_tasks})")
        return pool_tasks


class SelfInstructConfig(SelfInstructOptions):
    seed: int = 0  # the run's


@dataclasses.dataclass
class Proposal:
    """A proposed instruction and its fate: `reason` None means it joined the pool."""

    instruction: str
    round: int
    reason: str | None = None
    is_classification: bool | None = None
    instances: list[dict] = dataclasses.field(default_factory=list)
    meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SelfInstructResult:
    pooled: list[Proposal]  # joined the pool; reason set when no instance could be made
    dropped: list[Proposal]  # never joined the pool
    drops: Counter
    rounds: int
    requests: int
    stopped_early: bool
    model: str


def load_seed_tasks(path: str | Path) -> list[SeedTask]:
    """Seeds from `seed_tasks.jsonl` (instruction, instances, is_classification), any JSONL with an
    `instruction`/`prompt`/`question` field or chat `messages`, or a text file with one per line."""
    path = Path(path)
    tasks = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix not in (".jsonl", ".json"):
            tasks.append(SeedTask(line.strip()))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
        text = obj.get("instruction") or obj.get("prompt") or obj.get("question")
        if text is None and obj.get("messages"):
            text = next((m["content"] for m in obj["messages"] if m.get("role") == "user"), None)
        if not text:
            raise ValueError(f"{path}:{n}: no instruction, prompt, question or user message")
        tasks.append(SeedTask(text, obj.get("instances") or [], obj.get("is_classification"), obj.get("id")))
    if not tasks:
        raise ValueError(f"{path}: no seed tasks")
    return tasks


def parse_proposals(text: str) -> list[str]:
    """Split a continued numbered list into instructions (the first item follows the prompt's 'N.')."""
    out = []
    for item in _ITEM_SPLIT.split(text):
        item = re.sub(r"\s+", " ", item).strip()
        if item:
            out.append(item[0].upper() + item[1:])
    return out


def proposal_drop_reason(instruction: str, min_words: int = 4, max_words: int = 150) -> str | None:
    """The paper's cheap filters, in its order; None keeps the proposal for the ROUGE-L check."""
    words = len(instruction.split())
    if words < min_words:
        return "too_short"
    if words > max_words:
        return "too_long"
    if _UNSUITABLE_RE.search(instruction):
        return "unsuitable_for_text_model"
    # The released code drops these: the model tends to turn tasks into "write a program" tasks.
    if instruction.startswith("Write a program"):
        return "write_a_program"
    if instruction[0] in string.punctuation:
        return "starts_with_punctuation"
    if not instruction[0].isascii():
        return "starts_non_ascii"
    return None


def parse_is_classification(text: str) -> bool | None:
    word = re.match(r"\W*(\w+)", text or "")
    if not word:
        return None
    return {"yes": True, "no": False}.get(word.group(1).lower())


def parse_instances(text: str, output_first: bool) -> list[dict]:
    """Instances from an `Example N / Input / Output` (input first) or `Label / Input` (output first) list."""
    text = re.split(r"\nTask:", text)[0]
    out = []
    if output_first:
        for chunk in re.split(r"(?:^|\n)\s*Label\s*:", text)[1:]:
            label, _, rest = chunk.partition("\n")
            inp = re.sub(r"^\s*Input\s*:", "", rest.strip()).strip()
            out.append({"input": _none_to_empty(inp), "output": label.strip()})
    else:
        for chunk in re.split(r"(?:^|\n)\s*Example\s*\d*\s*:?\s*(?=\n|Input)", text):
            m = re.search(r"Input\s*:(.*?)(?:\n\s*Output\s*:(.*))?$", chunk, re.S)
            if m and m.group(2) is not None:
                out.append({"input": _none_to_empty(m.group(1).strip()), "output": m.group(2).strip()})
            elif not m and re.search(r"Output\s*:", chunk):
                out.append({"input": "", "output": re.split(r"Output\s*:", chunk, 1)[1].strip()})
    return out


def numbered_list(tasks: Sequence[str], start: int = 1) -> str:
    """Tasks as the propose prompt lists them, one line each: `N. task`."""
    return "\n".join(f"{i}. {one_line(t)}" for i, t in enumerate(tasks, start))


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(":")


def _none_to_empty(text: str) -> str:
    return "" if text.strip().lower() in ("<none>", "none", "") else text


def instances_template(output_first: bool) -> Prompt:
    return INSTANCES_OUTPUT_FIRST if output_first else INSTANCES_INPUT_FIRST


def format_instances(instances: Sequence[dict], output_first: bool) -> str:
    """A task's instances as the instance prompts show them (and `parse_instances` reads them back)."""
    lines = []
    for i, inst in enumerate(instances, 1):
        if output_first:
            lines += [f"Label: {inst['output']}", f"Input: {inst['input'] or '<none>'}"]
        else:
            lines += [f"Example {i}", f"Input: {inst['input'] or '<none>'}", f"Output: {inst['output']}"]
    return "\n".join(lines)


def valid_instances(instances: Sequence[dict], limit: int) -> list[dict]:
    """Drop instances the released code drops: no output, output equal to input, duplicates."""
    seen, kept = set(), []
    for inst in instances:
        key = (inst["input"], inst["output"])
        if not inst["output"] or inst["input"] == inst["output"] or key in seen:
            continue
        seen.add(key)
        kept.append(inst)
    return kept[:limit]


class SelfInstruct:
    def __init__(self, client: LLMClient, seeds: Sequence[SeedTask], config: SelfInstructConfig):
        if len(seeds) < config.prompt_tasks - config.pool_tasks:
            raise ValueError(f"need at least {config.prompt_tasks - config.pool_tasks} seed tasks, got {len(seeds)}")
        self.client = client
        self.config = config
        self.all_seeds = list(seeds)  # few-shot examples for the classification and instance prompts
        self.seeds = [s for s in seeds if s.is_classification] if config.classification_only else list(seeds)
        self.rng = random.Random(config.seed)
        self.index = NoveltyIndex([s.instruction for s in self.seeds])
        self.pool: list[str] = []  # generated instructions, in pool order
        self.requests = 0

    # -- proposing -------------------------------------------------------------------------------

    def propose_prompt(self) -> str:
        cfg = self.config
        shown = self.rng.sample(self.pool, min(cfg.pool_tasks, len(self.pool)))
        shown += [s.instruction for s in self.rng.sample(self.seeds, cfg.prompt_tasks - len(shown))]
        self.rng.shuffle(shown)
        template = SELF_INSTRUCT_PROPOSE_CLASSIFICATION if cfg.classification_only else SELF_INSTRUCT_PROPOSE
        return template.render(tasks=numbered_list(shown) + f"\n{len(shown) + 1}.")

    def propose(self, round_no: int) -> tuple[list[Proposal], list[Proposal]]:
        """One round: prompts out, proposals filtered and checked for novelty one by one."""
        cfg = self.config
        template = SELF_INSTRUCT_PROPOSE_CLASSIFICATION if cfg.classification_only else SELF_INSTRUCT_PROPOSE
        last = 2 * cfg.prompt_tasks  # stop before the list runs on for ever
        params = SamplingParams(
            temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
            stop=("\n\n", f"\n{last}", f"{last}.", f"{last} ."), seed=self.rng.randrange(2**31),
            guide=cfg.guide(proposals_format(last - cfg.prompt_tasks - 1)),
        )  # fmt: skip
        prompts = [self.propose_prompt() for _ in range(cfg.requests_per_round)]
        responses = self._generate([Request(prompt=p, params=params) for p in prompts])
        accepted, dropped = [], []
        for response in responses:
            base = {"prompt_version": template.id, "model": response.model}
            if response.error:
                dropped.append(Proposal("", round_no, "llm_error", meta={**base, "error": response.error}))
                continue
            cut = response.choices[0].finish_reason == "length"
            for text in parse_proposals(response.text):
                if len(self.pool) >= cfg.target:
                    break
                p = Proposal(text, round_no, meta=dict(base))
                # A cut generation is dropped whole, as in the released code.
                p.reason = "truncated" if cut else proposal_drop_reason(text, cfg.min_words, cfg.max_words)
                if p.reason is None:
                    score, match = self.index.best_match(text, cfg.rouge_threshold)
                    if match is not None:
                        p.reason = "rouge_similar"
                        p.meta.update(rouge_l=score, most_similar=self._pooled_text(match))
                if p.reason:
                    dropped.append(p)
                    continue
                self.index.add(text)
                self.pool.append(text)
                accepted.append(p)
        return accepted, dropped

    def _pooled_text(self, index: int) -> str:
        """The pool indexes the prompting seeds first, then generated tasks in order."""
        n = len(self.seeds)
        return self.seeds[index].instruction if index < n else self.pool[index - n]

    # -- classification and instances --------------------------------------------------------------

    def classify(self, proposals: list[Proposal]) -> None:
        """The model labels each task classification or not (the paper's check, few-shot from the seeds)."""
        params = SamplingParams(temperature=0.0, max_tokens=3, stop=("\n",), guide=self.config.guide(_IS_CLASSIFICATION_FORMAT))
        requests = [Request(prompt=self.classification_prompt(p.instruction), params=params) for p in proposals]
        for p, r in zip(proposals, self._generate(requests)):
            p.meta["prompt_version_classification"] = IS_CLASSIFICATION.id
            if r.error:
                p.reason, p.meta["error"] = "llm_error", r.error
                continue
            label = parse_is_classification(r.text)
            p.is_classification = bool(label) or self.config.classification_only

    def make_instances(self, proposals: list[Proposal]) -> None:
        cfg = self.config
        seed = self.rng.randrange(2**31)
        todo = [p for p in proposals if p.reason is None]
        requests = []
        for p in todo:
            output_first = bool(p.is_classification)
            params = SamplingParams(  # two instances more than kept, for the duplicates valid_instances drops
                temperature=0.0, max_tokens=cfg.instance_max_tokens, stop=("\nTask:", "Task:"), seed=seed,
                guide=cfg.guide(instances_format(output_first, cfg.instances_per_task + 2)),
            )  # fmt: skip
            requests.append(Request(prompt=self.instances_prompt(p.instruction, output_first), params=params))
            p.meta["prompt_version_instances"] = instances_template(bool(p.is_classification)).id
        for p, r in zip(todo, self._generate(requests)):
            if r.error:
                p.reason, p.meta["error"] = "llm_error", r.error
                continue
            p.instances = valid_instances(parse_instances(r.text, bool(p.is_classification)), cfg.instances_per_task)
            if not p.instances:
                p.reason = "no_valid_instance"
                p.meta["raw_instances"] = r.text[:2000]

    def classification_prompt(self, instruction: str) -> str:
        examples = "".join(
            f"Task: {s.instruction}\nClassification: {'Yes' if s.is_classification else 'No'}\n\n"
            for s in self._few_shot(lambda s: s.is_classification is not None, 12)
        )
        return IS_CLASSIFICATION.render(examples=examples, instruction=instruction)

    def instances_prompt(self, instruction: str, output_first: bool) -> str:
        shots = self._few_shot(lambda s: bool(s.instances) and bool(s.is_classification) == output_first, 3)
        examples = "".join(f"Task: {s.instruction}\n{format_instances(s.instances, output_first)}\n\n" for s in shots)
        return instances_template(output_first).render(examples=examples, instruction=instruction)

    def _few_shot(self, keep: Callable[[SeedTask], bool], k: int) -> list[SeedTask]:
        pool = [s for s in self.all_seeds if keep(s)]
        return random.Random(self.config.seed).sample(pool, min(k, len(pool)))

    def _generate(self, requests: list[Request]) -> list[Response]:
        self.requests += len(requests)
        return self.client.generate(requests) if requests else []

    # -- the loop --------------------------------------------------------------------------------

    def run(self, on_round: Callable[[int, int], None] | None = None) -> SelfInstructResult:
        """Rounds until the pool holds `target` tasks or `max_stale_rounds` rounds in a row add none.

        Rounds in which no request was answered are stale too, but it is the endpoint that stopped
        the loop then, not the task space: that raises `EndpointFailing`, since the loop ends before
        the client's failure window has seen enough requests to judge (a server that died mid-run
        gave a finished run of 27 new tasks out of 400 asked, and exit 0)."""
        cfg = self.config
        pooled, dropped, stale, round_no = [], [], 0, 0
        unanswered, first_error = 0, ""  # rounds in a row in which every request failed, and the first error of them
        while len(self.pool) < cfg.target and stale < cfg.max_stale_rounds:
            round_no += 1
            accepted, rejected = self.propose(round_no)
            dropped += rejected
            stale = 0 if accepted else stale + 1
            errors = [p.meta["error"] for p in rejected if p.reason == "llm_error"]
            if len(errors) < cfg.requests_per_round:
                unanswered = 0
            else:
                first_error = first_error if unanswered else errors[0]
                unanswered += 1
            if accepted:
                self.classify(accepted)
                self.make_instances(accepted)
                pooled += accepted
            if on_round:
                on_round(round_no, len(self.pool))
        if unanswered >= cfg.max_stale_rounds:
            raise EndpointFailing(f"none of the last {unanswered * cfg.requests_per_round} requests to {self.client.model} "
                                  f"({unanswered} rounds) was answered; the first error: {first_error}")
        drops = Counter(p.reason for p in pooled + dropped if p.reason)
        return SelfInstructResult(pooled, dropped, drops, round_no, self.requests, len(self.pool) < cfg.target, self.client.model)
