"""Every prompt the generators send, in one place, each with a version recorded on the rows it makes.

The wording is ours (the papers' prompts inspired the structure, not the text). A template's
`version` changes whenever its text changes, and every generated row carries the versions that
produced it in `meta.prompt_version`, so data made by different prompt texts is never mixed up.
Placeholders use `string.Template` (`$name`), so braces in examples or code need no escaping.
"""

from __future__ import annotations

import dataclasses
from string import Template


@dataclasses.dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    text: str

    @property
    def id(self) -> str:
        """What rows record: `name@version`."""
        return f"{self.name}@{self.version}"

    def render(self, **fields: str) -> str:
        return Template(self.text).substitute(fields)


# --- Self-Instruct -------------------------------------------------------------------------------

SELF_INSTRUCT_PROPOSE = Prompt(
    "self_instruct.propose",
    1,
    "Below is a numbered list of diverse tasks that a person could ask an AI assistant to do. "
    "Continue the list with new tasks that are different from the ones already there.\n"
    "$tasks",
)

SELF_INSTRUCT_PROPOSE_CLASSIFICATION = Prompt(
    "self_instruct.propose_classification",
    1,
    "Below is a numbered list of diverse classification tasks for an AI assistant. Where possible, "
    "each task names the labels its answer must come from. Continue the list with new ones.\n"
    "$tasks",
)

IS_CLASSIFICATION = Prompt(
    "self_instruct.is_classification",
    1,
    "Decide whether each task is a classification task: its answer is one of a small, fixed set of "
    "labels (like yes/no, positive/negative, or a category name) rather than free text.\n\n"
    "${examples}"
    "Task: $instruction\nClassification:",
)

INSTANCES_INPUT_FIRST = Prompt(
    "self_instruct.instances_input_first",
    1,
    "For each task, write examples: first an input for the task (or \"Input: <none>\" when the task "
    "needs no extra input), then the correct output for that input.\n\n"
    "${examples}"
    "Task: $instruction\n",
)

INSTANCES_OUTPUT_FIRST = Prompt(
    "self_instruct.instances_output_first",
    1,
    "For each classification task, list the possible labels, and for each label write an input that "
    "belongs to it. Start every example with its label.\n\n"
    "${examples}"
    "Task: $instruction\n",
)

# --- Evol-Instruct -------------------------------------------------------------------------------

# Markers of the evolving prompt. A model that copies them into its instruction failed to follow
# it, which is one of the paper's elimination rules.
EVOL_GIVEN = "#Original Instruction#"
EVOL_NEW = "#New Instruction#"

_EVOL_DEPTH = (
    "You rewrite instructions for an AI assistant to make them harder for strong models such as "
    "GPT-4 to answer, while keeping them sensible and answerable by a person. Keep every non-text "
    "part of the original, such as tables or code. $method Add only 10 to 20 words to the original, "
    f"and never mention '{EVOL_GIVEN}' or '{EVOL_NEW}' in your answer.\n\n"
    f"{EVOL_GIVEN}\n$instruction\n\n{EVOL_NEW}\n"
)

EVOL_METHODS = {
    "add_constraints": "Add one more constraint or requirement that the answer must satisfy.",
    "deepen": "If the instruction asks about something, ask about it in more depth and breadth.",
    "concretize": "Replace general concepts with more specific ones.",
    "increase_reasoning": "If the instruction can be solved in a few simple steps, rewrite it so "
    "that solving it explicitly needs several steps of reasoning.",
    "complicate_input": "Add a piece of input data the answer must work with, such as a table, "
    "a code snippet, a formula or a JSON object, and refer to it in the instruction.",
}

EVOL_IN_DEPTH = {
    op: Prompt(f"evol_instruct.{op}", 1, _EVOL_DEPTH.replace("$method", method)) for op, method in EVOL_METHODS.items()
}

EVOL_IN_BREADTH = Prompt(
    "evol_instruct.breadth",
    1,
    "You invent new instructions for an AI assistant. Take the instruction below as inspiration and "
    "write a brand-new one in the same domain but on a rarer topic. It should be about as long and "
    "as hard as the original, and a person must be able to understand and answer it. "
    f"Never mention '{EVOL_GIVEN}' or '{EVOL_NEW}' in your answer.\n\n"
    f"{EVOL_GIVEN}\n$instruction\n\n{EVOL_NEW}\n",
)

EVOL_EQUALITY = Prompt(
    "evol_instruct.equality",
    1,
    "Are the two instructions below the same request? They are the same if they ask for the same "
    "thing, with the same constraints and requirements and the same depth and breadth.\n\n"
    "First instruction:\n$first\n\nSecond instruction:\n$second\n\n"
    "Answer with exactly one word, Equal or Different.",
)

# --- Responses and judging -----------------------------------------------------------------------

RESPOND = Prompt("respond", 1, "$instruction")

# The user's side of a multi-turn conversation; `$conversation` is its transcript, turns headed
# [User] and [Assistant], and the model writes the next [User] turn.
USER_SIMULATOR = Prompt(
    "respond.user_simulator",
    1,
    "You play the user in a conversation with an AI assistant. Read the conversation below and "
    "write the user's next message: a natural follow-up in the user's own voice, such as a further "
    "question, a request for more detail or for a change, or a related new request. Write only "
    "that message, with no label and no quotes.\n\n"
    "$conversation\n\n[User]\n",
)

JUDGE_RUBRIC = Prompt(
    "judge.rubric",
    1,
    "Rate how good an AI assistant's answer is to the user's request, on a scale from 1 to 10.\n"
    "Consider, in this order: does it do what was asked (instruction following), is it correct "
    "and free of made-up facts (truthfulness), is it honest about uncertainty (honesty), and "
    "is it useful, clear and complete (helpfulness). 1 means useless or harmful, 10 means it "
    "could not be better.\n\n"
    "[Request]\n$instruction\n\n[Answer]\n$response\n\n"
    "Write one short sentence of justification, then the last line exactly as 'Rating: N'.",
)

JUDGE_PAIRWISE = Prompt(
    "judge.pairwise",
    1,
    "Two AI assistants answered the same request. Decide which answer is better: more helpful, "
    "correct, honest and closer to what was asked. Ignore the order of the answers and their "
    "length unless length matters for the request.\n\n"
    "[Request]\n$instruction\n\n[Answer A]\n$first\n\n[Answer B]\n$second\n\n"
    "Write one short sentence of justification, then the last line exactly as "
    "'Winner: A', 'Winner: B' or 'Winner: tie'.",
)

# --- Grounded instructions (back-translation) ----------------------------------------------------

BACKTRANSLATE = Prompt(
    "grounded.backtranslate",
    1,
    "Below is a text from the web. Imagine a user asked an AI assistant something and this text "
    "was the perfect answer. Write that user's request: one self-contained instruction or question, "
    "with no reference to 'the text' or 'the document'. Output only the request.\n\n"
    "[Text]\n$document\n\n[Request]\n",
)

GROUNDED_JUDGE = Prompt(
    "grounded.judge",
    1,
    "Rate how well the answer below serves as an AI assistant's reply to the request, from 1 to 5:\n"
    "1: unrelated, or mostly off-topic or unusable content;\n"
    "2: addresses the request only in part, or is mostly boilerplate;\n"
    "3: helpful but not written as an assistant's reply (e.g. a blog post or a web page);\n"
    "4: a good assistant's reply, complete and focused, with small flaws;\n"
    "5: a perfect assistant's reply.\n\n"
    "[Request]\n$instruction\n\n[Answer]\n$response\n\n"
    "Write one short sentence of justification, then the last line exactly as 'Score: N'.",
)
