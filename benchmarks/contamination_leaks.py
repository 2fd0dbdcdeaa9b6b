"""A hard corpus of benchmark leaks, for measuring contamination detection the way items really leak.

Our first corpus planted each item whole with one mild edit and found 99.7% of them; a held-out
corpus of real-looking leaks found far less (issue 17). This one is built to be hard: half of each
benchmark's sample is drawn from the shortest quarter of its items (a few words of question, one-word
choices), items are rendered the way evaluation harnesses and training sets print them, and every
edit below is one that leaked copies show. Five kinds, one leak per sampled item and kind:

- verbatim: the item as its benchmark renders it (one of the harness formats: MMLU with lettered
  options and `Answer: B`, GSM8K as `Question:`/`Answer:`, HumanEval as prompt and solution).
- light: the rendering with one edit: case, punctuation, whitespace, one number of the question
  changed, options reordered, words joined or split (`basket ball`, `com-\\npute`), or markup around
  the text (Markdown emphasis and lists, LaTeX math, HTML tags, HTML entities).
- partial: the question without its answer (MMLU: with its options), or a fragment of 40-70% of the
  rendered item's words.
- paraphrase: the item reworded by `paraphrase` below. No LLM is available here, so the rewriter is
  deterministic: synonyms from a small built-in table, number words for digits and back, dropped
  filler words, question openings reworded, clauses and sentences reordered, and a few active
  sentences turned passive. It changes many words but keeps most of the structure; an LLM's
  paraphrase keeps less, so real paraphrases are harder than these.
- instruction: the item as a user turn with its answer as the assistant turn (with or without
  `Question:`/`Answer:` labels, options as a list or inline), both as a chat row (`messages`) and
  flattened into one document by a chat template (Alpaca, ChatML, `User:`/`Assistant:`, Llama-2's
  `[INST]`, or a JSON line whose newlines are escaped).

Every leak but the instruction rows is planted at a sentence boundary of a clean web document.
Ray-free and deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from typing import Callable, Iterable, Sequence

from filters.contamination import REGISTRY, BenchmarkItem, load_items

KINDS = ("verbatim", "light", "partial", "paraphrase", "instruction")
LETTERS = "ABCDEFGHIJ"


@dataclasses.dataclass(frozen=True)
class Source:
    """One benchmark item in the shape a leak needs: what the matcher indexes, plus its answer."""

    item: BenchmarkItem  # as the registry loads it (the key a hit must name)
    question: str
    choices: tuple[str, ...] = ()
    answer: str = ""  # the text of the answer: a solution, a worked answer, the right choice
    answer_index: int | None = None  # multiple choice: which choice is right

    @property
    def key(self) -> tuple[str, str]:
        return self.item.benchmark, self.item.item_id


@dataclasses.dataclass(frozen=True)
class Leak:
    kind: str
    variant: str  # how it was made: the rendering, edit, fragment or template
    source: Source
    text: str  # the document to scan (for chat rows, the leaked turns only, for reference)
    messages: tuple[dict, ...] | None = None  # set for instruction rows


def load_sources(names: Iterable[str], benchmarks_dir) -> list[Source]:
    """Registered benchmarks with their answers. MMLU's answer index is not matched (it is not text) and
    the registry leaves it out; it is loaded here with the same mapping, so item ids agree."""
    out: list[Source] = []
    for name in names:
        spec = REGISTRY[name]
        if name == "mmlu":
            with_answer = dataclasses.replace(spec, local_fields=(*spec.local_fields, "answer"))
            items = load_items(spec, benchmarks_dir)
            answered = {it.item_id: it.parts for it in load_items(with_answer, benchmarks_dir)}
            for it in items:
                parts = answered.get(it.item_id, ())
                if len(parts) != len(it.parts) + 1 or not parts[-1].isdigit() or int(parts[-1]) >= len(it.parts) - 1:
                    continue  # an empty choice shifted the parts: the answer cannot be told
                k = int(parts[-1])
                out.append(Source(it, it.parts[0], it.parts[1:], it.parts[1 + k], k))
        else:
            out.extend(Source(it, it.parts[0], (), "\n".join(it.parts[1:])) for it in load_items(spec, benchmarks_dir))
    return out


def sample(sources: Sequence[Source], per_benchmark: int, rng: random.Random) -> list[Source]:
    """Per benchmark, half from the shortest quarter of its items (question, options and answer together: a
    short question with long options is not a short item), half from the rest."""
    by_bench: dict[str, list[Source]] = {}
    for s in sources:
        by_bench.setdefault(s.item.benchmark, []).append(s)
    out = []
    for group in by_bench.values():
        ranked = sorted(group, key=lambda s: (sum(len(p.split()) for p in s.item.parts), s.key))
        short, rest = ranked[:len(ranked) // 4], ranked[len(ranked) // 4:]
        k = min(per_benchmark, len(group))
        out += rng.sample(short, min(k // 2, len(short))) + rng.sample(rest, k - min(k // 2, len(short)))
    return out


# ---- renderings: the item as its benchmark (or an evaluation harness) prints it ----

def render(s: Source, style: int = 0, order: Sequence[int] | None = None) -> str:
    """The whole item, in one of a few harness formats (`style`); `order` permutes the options."""
    if s.choices:
        order = list(order) if order is not None else list(range(len(s.choices)))
        letter = LETTERS[order.index(s.answer_index)]
        opts = [s.choices[i] for i in order]
        if style % 3 == 0:
            return "\n".join([s.question, *(f"{LETTERS[k]}. {c}" for k, c in enumerate(opts)), f"Answer: {letter}"])
        if style % 3 == 1:
            inline = " ".join(f"({LETTERS[k]}) {c}" for k, c in enumerate(opts))
            return f"Question: {s.question}\nChoices: {inline}\nAnswer: ({letter}) {s.answer}"
        return "\n".join([s.question, *(f"{LETTERS[k]}) {c}" for k, c in enumerate(opts)), f"The answer is {letter}."])
    if style % 2 == 0:
        return f"{s.question}\n{s.answer}"
    return f"Question: {s.question}\nAnswer: {s.answer}"


def _question_block(s: Source, inline: bool) -> str:
    if not s.choices:
        return s.question
    if inline:
        return s.question + " " + " ".join(f"({LETTERS[k]}) {c}" for k, c in enumerate(s.choices))
    return "\n".join([s.question, *(f"{LETTERS[k]}. {c}" for k, c in enumerate(s.choices))])


# ---- light edits ----

_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.]\d)")
_WORD = re.compile(r"[A-Za-z]{2,}")


def edit_case(text: str, rng: random.Random) -> str:
    return rng.choice([str.upper, str.lower, str.title])(text)


def edit_punctuation(text: str, rng: random.Random) -> str:
    text = re.sub(r"[,.;:!?]", lambda m: rng.choice(["", " ,", " -", "!", " ...", m.group()]), text)
    return text.replace("'", "’").replace('"', rng.choice(["“", "«", "''"]))


def edit_whitespace(text: str, rng: random.Random) -> str:
    return re.sub(r"\s+", lambda m: rng.choice([" ", "  ", "\n", "\t", " \n ", "\n\n"]), text)


def change_number(text: str, rng: random.Random, within: str) -> str | None:
    """One number of `within` (a part of `text`, the question) changed; None when it has none."""
    numbers = list(_NUMBER.finditer(within))
    if not numbers:
        return None
    m = rng.choice(numbers)
    changed = within[:m.start()] + str(int(m.group()) + rng.randint(1, 9)) + within[m.end():]
    return text.replace(within, changed, 1)


def join_or_split(text: str, rng: random.Random) -> str:
    """Two places where a word boundary moved: words joined (`basket ball` -> `basketball`), a long word
    split (`every one`), or a word hyphenated across a line break (`com-\\npute`)."""
    words = list(re.finditer(r"[A-Za-z]+", text))
    edits = [(a.end(), b.start(), "") for a, b in zip(words, words[1:]) if text[a.end():b.start()] == " "]
    for w in (w for w in words if len(w.group()) >= 7):
        cut = w.start() + rng.randint(3, len(w.group()) - 3)
        edits.append((cut, cut, rng.choice([" ", "-\n"])))
    chosen = sorted(rng.sample(edits, min(2, len(edits))), reverse=True)
    for start, end, insert in chosen:
        text = text[:start] + insert + text[end:]
    return text


def markdown(s: Source, rng: random.Random) -> str:
    def emph(t: str) -> str:
        return re.sub(r"\b[A-Za-z]{5,}\b", lambda m: f"**{m.group()}**" if rng.random() < 0.2 else m.group(), t)

    if s.choices:
        opts = "\n".join(f"- **{LETTERS[k]}.** {emph(c)}" for k, c in enumerate(s.choices))
        return f"**Question:** {emph(s.question)}\n\n{opts}\n\n> **Answer:** `{LETTERS[s.answer_index]}`"
    if s.item.benchmark == "humaneval":
        return f"## Problem\n\n```python\n{s.question}{s.answer}```"
    return f"### Question\n{emph(s.question)}\n\n**Solution.** {emph(s.answer)}"


def latex(s: Source, rng: random.Random) -> str:
    def math(t: str) -> str:
        t = re.sub(r"(\d+)\s*/\s*(\d+)", r"$\\frac{\1}{\2}$", t)
        t = re.sub(r"\$(\d+(?:\.\d+)?)", r"\\$\1", t)
        t = re.sub(r"(?<![\w{$.])(\d+(?:\.\d+)?)(?![\w}])", r"$\1$", t)
        return t.replace(" * ", " $\\times$ ").replace("%", "\\%")

    if s.choices:
        items = "\n".join(f"  \\item {math(c)}" for c in s.choices)
        return f"\\textbf{{Question.}} {math(s.question)}\n\\begin{{enumerate}}\n{items}\n\\end{{enumerate}}"
    return f"\\paragraph{{Problem}} {math(s.question)}\n\n\\textit{{Solution:}} {math(s.answer)}"


def html(s: Source, rng: random.Random) -> str:
    """Tags with no space around the text, as a page's source or a careless extraction leaves them."""
    if s.choices:
        opts = "".join(f"<li>{c}</li>" for c in s.choices)
        return f"<p><b>{s.question}</b></p><ol type=\"A\">{opts}</ol><p>Answer: {LETTERS[s.answer_index]}</p>"
    return f"<div class=\"q\"><p>{s.question}</p></div><p><i>{s.answer}</i></p>".replace("\n", "<br>")


def entities(text: str, rng: random.Random) -> str:
    """HTML entities left in the text: quotes, apostrophes, ampersands, some spaces as `&nbsp;`."""
    text = text.replace("&", "&amp;").replace("'", "&#39;").replace("’", "&rsquo;").replace('"', "&quot;")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r" ", lambda m: "&nbsp;" if rng.random() < 0.3 else " ", text)


def light(s: Source, rng: random.Random) -> tuple[str, str]:
    """(variant, text): one light edit, chosen among those that apply to the item."""
    base = render(s, rng.randrange(6))
    options: dict[str, Callable[[], str | None]] = {
        "case": lambda: edit_case(base, rng),
        "punctuation": lambda: edit_punctuation(base, rng),
        "whitespace": lambda: edit_whitespace(base, rng),
        "changed_number": lambda: change_number(base, rng, s.question),
        "joined_split": lambda: join_or_split(base, rng),
        "markdown": lambda: markdown(s, rng),
        "latex": lambda: latex(s, rng),
        "html": lambda: html(s, rng),
        "entities": lambda: entities(base, rng),
    }
    if s.choices:
        options["reordered_options"] = lambda: render(s, rng.randrange(3), _shuffled(len(s.choices), rng))
    if not _NUMBER.search(s.question):
        del options["changed_number"]
    variant = rng.choice(sorted(options))
    return variant, options[variant]()


def _shuffled(n: int, rng: random.Random) -> list[int]:
    order = list(range(n))
    while order == sorted(order):
        rng.shuffle(order)
    return order


# ---- partial ----

def partial(s: Source, rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return "question_only", _question_block(s, inline=rng.random() < 0.5)
    words = render(s, rng.randrange(6)).split(" ")
    length = max(1, round(len(words) * rng.uniform(0.4, 0.7)))
    start = rng.randint(0, len(words) - length)
    return "fragment", " ".join(words[start:start + length])


# ---- paraphrase: a deterministic rewriter ----

SYNONYMS = {
    "buy": "purchase", "buys": "purchases", "bought": "purchased", "sell": "vend", "sells": "vends", "sold": "vended",
    "has": "owns", "have": "own", "had": "owned", "make": "earn", "makes": "earns", "made": "earned",
    "gets": "receives", "get": "receive", "got": "received", "gives": "hands", "give": "hand", "gave": "handed",
    "wants": "wishes", "want": "wish", "needs": "requires", "need": "require", "uses": "utilizes", "use": "utilize",
    "each": "every", "total": "overall", "money": "cash", "car": "vehicle", "cars": "vehicles",
    "big": "large", "small": "little", "large": "big", "little": "small", "begins": "starts", "starts": "begins",
    "find": "determine", "calculate": "compute", "return": "give back", "returns": "gives back",
    "number": "count", "numbers": "values", "list": "array", "string": "text", "given": "provided",
    "many": "numerous", "several": "a few", "week": "seven days", "weeks": "weeks' time", "day": "day's time",
    "hour": "60 minutes", "minutes": "mins", "dollars": "bucks", "friend": "pal", "friends": "pals",
    "store": "shop", "house": "home", "children": "kids", "child": "kid", "mother": "mom", "father": "dad",
    "following": "below", "correct": "right", "statement": "claim", "statements": "claims", "true": "correct",
    "false": "incorrect", "most": "the majority of", "likely": "probably", "because": "since", "however": "but",
    "therefore": "so", "example": "instance", "important": "key", "increase": "rise", "decrease": "drop",
    "cost": "price", "costs": "is priced at", "price": "cost", "people": "persons", "person": "individual",
    "city": "town", "job": "work", "works": "labors", "work": "labor", "school": "academy", "class": "lesson",
    "students": "pupils", "student": "pupil", "teacher": "instructor", "book": "volume", "books": "volumes",
    "total of": "sum of", "amount": "quantity", "half": "fifty percent", "twice": "two times",
    "which": "what", "describes": "characterizes", "best": "most accurately", "primary": "main",
    "function": "routine", "element": "item", "elements": "items", "value": "quantity", "check": "verify",
}
FILLER = {"very", "really", "just", "also", "actually", "then", "still", "quite"}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
OPENINGS = [
    (r"^How many (.+?)\?$", r"What is the number of \1?"),
    (r"^How much (.+?)\?$", r"What amount of \1?"),
    (r"^Which of the following (.+?)\?$", r"Among these options, which \1?"),
    (r"^What is (.+?)\?$", r"Identify \1."),
    (r"^What (.+?)\?$", r"Tell me what \1."),
]
_PASSIVE = re.compile(r"\b([A-Z][a-z]+) (buys|sells|makes|eats|reads|writes|bakes|picks|plants) (\d+ [a-z]+)\b")
_PARTICIPLE = {"buys": "bought", "sells": "sold", "makes": "made", "eats": "eaten", "reads": "read",
               "writes": "written", "bakes": "baked", "picks": "picked", "plants": "planted"}


def _keep_case(src: str, new: str) -> str:
    return new[:1].upper() + new[1:] if src[:1].isupper() else new


def reword(text: str, rng: random.Random) -> str:
    """Word-level changes: synonyms, number words for digits (and back), filler dropped."""
    def word(m: re.Match) -> str:
        w = m.group()
        low = w.lower()
        if low in FILLER:
            return ""
        if low in SYNONYMS and rng.random() < 0.9:
            return _keep_case(w, SYNONYMS[low])
        if w.isdigit() and int(w) <= 20 and rng.random() < 0.8:
            return NUMBER_WORDS[int(w)]
        if low in NUMBER_WORDS and rng.random() < 0.8:
            return str(NUMBER_WORDS.index(low))
        return w

    text = re.sub(r"[A-Za-z]+|\d+", word, text)
    return re.sub(r"  +", " ", re.sub(r" ([,.?!])", r"\1", text))


def restructure(text: str, rng: random.Random) -> str:
    """Sentence-level changes: a few active sentences made passive, `If A, B.` as `B if A.`, the question's
    opening reworded, and two statements before the question swapped."""
    text = _PASSIVE.sub(lambda m: f"{m.group(3)} {'are' if not m.group(3).startswith('1 ') else 'is'} "
                                  f"{_PARTICIPLE[m.group(2)]} by {m.group(1)}", text)
    sentences = re.split(r"(?<=[.?!])\s+", text.strip())
    out = []
    for sent in sentences:
        m = re.match(r"^If (.+?), (.+?)([.?!])$", sent)
        if m:
            sent = f"{m.group(2)[:1].upper()}{m.group(2)[1:]} if {m.group(1)[:1].lower()}{m.group(1)[1:]}{m.group(3)}"
        for pattern, repl in OPENINGS:
            if re.match(pattern, sent):
                sent = re.sub(pattern, repl, sent)
                break
        out.append(sent)
    if len(out) >= 3:
        k = rng.randrange(len(out) - 2)
        out[k], out[k + 1] = out[k + 1], out[k]
    return " ".join(out)


def paraphrase(s: Source, rng: random.Random) -> tuple[str, str]:
    """The item reworded (question, options, answer): see the module docstring for what it changes."""
    if s.item.benchmark == "humaneval":
        return "code", f"{_reworded_prompt(s.question, rng)}{_renamed(s.answer)}"
    q = restructure(reword(s.question, rng), rng)
    if s.choices:
        order = _shuffled(len(s.choices), rng)
        opts = "; ".join(reword(s.choices[i], rng) for i in order)
        return "choices", f"{q} Options: {opts}. Correct: {reword(s.answer, rng)}"
    steps = re.sub(r"<<[^<>]*>>", "", s.answer).splitlines()  # an LLM's rewording drops GSM8K's calculator notes
    return "worked", q + "\n" + " ".join(restructure(reword(line, rng), rng) for line in steps if line.strip())


def _reworded_prompt(prompt: str, rng: random.Random) -> str:
    """A HumanEval prompt with the prose of its docstring reworded; signature and examples kept."""
    def prose(m: re.Match) -> str:
        lines = m.group(2).split("\n")
        text = [ln for ln in lines if ln.strip() and not re.search(r">>>|==|->|^\s*[\[\d(\'\"]", ln)]
        kept = [ln for ln in lines if ln not in text and ln.strip()]
        indent = re.match(r"\s*", text[0]).group() if text else "    "
        reworded = restructure(reword(" ".join(" ".join(text).split()), rng), rng)
        return m.group(1) + "\n" + indent + reworded + "\n" + "\n".join(kept) + "\n" + indent + m.group(1)

    return re.sub(r'("""|\'\'\')(.*?)\1', prose, prompt, count=1, flags=re.S)


_KEYWORDS = {"for", "in", "if", "else", "elif", "return", "while", "and", "or", "not", "is", "def", "lambda", "None",
             "True", "False", "import", "from", "as", "with", "try", "except", "yield", "break", "continue", "pass"}


def _renamed(code: str) -> str:
    """The solution with its local variables renamed, as a rewritten solution would have them."""
    names = {n for n in re.findall(r"\b([A-Za-z_]\w*)\s*(?:[-+*/]?=(?!=))", code)}
    names |= set(re.findall(r"\bfor\s+([A-Za-z_]\w*)\s+in\b", code))
    names -= _KEYWORDS
    table = {n: (SYNONYMS.get(n) or f"{n}_value").replace(" ", "_") for n in names}
    return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: table.get(m.group(), m.group()), code)


# ---- instruction format ----

TEMPLATES = {
    "alpaca": "Below is an instruction that describes a task. Write a response that appropriately completes the "
              "request.\n\n### Instruction:\n{user}\n\n### Response:\n{assistant}",
    "chatml": "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>",
    "plain": "User: {user}\nAssistant: {assistant}",
    "llama2": "<s>[INST] {user} [/INST] {assistant} </s>",
}


def turns(s: Source, rng: random.Random) -> tuple[str, str, str]:
    """(variant, user turn, assistant turn)."""
    labels, inline = rng.random() < 0.5, rng.random() < 0.5
    if s.item.benchmark == "humaneval":
        user = f"Complete the following Python function.\n\n```python\n{s.question}```"
        assistant = f"```python\n{s.question}{s.answer}```" if labels else s.answer
    else:
        user = _question_block(s, inline)
        if labels:
            user = f"Question: {user}\nAnswer:" if rng.random() < 0.5 else f"Question: {user}"
        if s.choices:
            letter = LETTERS[s.answer_index]
            assistant = rng.choice([f"Answer: {letter}", f"The answer is ({letter}) {s.answer}.", s.answer])
        else:
            assistant = f"Answer: {s.answer}" if labels else s.answer
    variant = ("labels" if labels else "bare") + ("" if not s.choices else ("+inline" if inline else "+list"))
    return variant, user, assistant


def instruction(s: Source, rng: random.Random, flattened: bool) -> tuple[str, str, tuple[dict, ...] | None]:
    variant, user, assistant = turns(s, rng)
    messages = ({"role": "user", "content": user}, {"role": "assistant", "content": assistant})
    if not flattened:
        return f"row:{variant}", f"{user}\n\n{assistant}", messages
    name = rng.choice([*TEMPLATES, "jsonl"])
    if name == "jsonl":
        return f"doc:jsonl:{variant}", json.dumps({"messages": list(messages)}, ensure_ascii=False), None
    return f"doc:{name}:{variant}", TEMPLATES[name].format(user=user, assistant=assistant), None


# ---- planting and the corpus ----

def plant(host: str, text: str, rng: random.Random) -> str:
    """`text` inserted at a sentence boundary of `host`."""
    cuts = [m.end() for m in re.finditer(r"[.!?]\s", host)] or [len(host)]
    at = rng.choice(cuts)
    return host[:at] + "\n" + text + "\n" + host[at:]


def corpus(sources: Sequence[Source], hosts: Sequence[str], rng: random.Random) -> list[Leak]:
    """One leak per source and kind (instruction: one chat row and one flattened document)."""
    leaks: list[Leak] = []
    for s in sources:
        style = rng.randrange(6)
        leaks.append(Leak("verbatim", f"style{style % (3 if s.choices else 2)}", s, plant(rng.choice(hosts), render(s, style), rng)))
        for kind, make in (("light", light), ("partial", partial), ("paraphrase", paraphrase)):
            variant, text = make(s, rng)
            leaks.append(Leak(kind, variant, s, plant(rng.choice(hosts), text, rng)))
        for flattened in (False, True):
            variant, text, messages = instruction(s, rng, flattened)
            leaks.append(Leak("instruction", variant, s, text, messages))
    return leaks

