"""The prompts an eval asks both models: the held-out side of the fine-tune's split, or a prompt file.

The held-out split is recomputed exactly as `pipeline finetune` made it (the same rows, lineage keys,
fraction and seed, which the adapter's model card records), so the prompts were never trained on.
Each prompt is rendered with the evaluated model's own chat template, since that is how it is served.
"""

from __future__ import annotations

from pipeline import storage
from pipeline.errors import UserError
from pipeline.storage import Location
from pipeline.train.config import FinetuneConfig
from pipeline.train.data import conversations, read_records, resolve_paths
from pipeline.train.run import same_item, read_files
from pipeline.train.split import split_by_lineage


def split_of_run(cfg: FinetuneConfig, run_dir: Location) -> tuple[list[list[dict]], list[list[dict]]]:
    """(training, held-out) conversations of the fine-tune, split as it split them."""
    rows = [r for _, records in read_files(cfg.data, [run_dir / "data"]) for r in records if r.get("messages")]
    if not rows:
        raise UserError(f"eval: no instruction rows (with messages) in {', '.join(cfg.data) or run_dir / 'data'}")
    chats = conversations(rows)
    split = split_by_lineage(rows, [same_item(c) for c in chats], cfg.sft.eval_fraction, cfg.seed)
    return [chats[i] for i in split.train], [chats[i] for i in split.held_out]


def from_file(path: str) -> list[list[dict]]:
    """Conversations from a JSONL/Parquet file: rows with `messages` (a last assistant turn is the
    reference answer) or with `prompt` (a question; no reference, so only the judge scores it)."""
    try:
        rows = read_records(resolve_paths([path]))
    except OSError as e:
        raise UserError(f"eval: prompts {path}: {storage.first_line(e)}") from None
    chats = [r["messages"] if r.get("messages") else [{"role": "user", "content": r["prompt"]}]
             for r in rows if r.get("messages") or isinstance(r.get("prompt"), str)]
    if not chats:
        raise UserError(f"eval: prompts {path}: no rows with `messages` or `prompt`")
    return [list(c) for c in chats]


def render(tokenizer, chats: list[list[dict]], model: str) -> list[dict]:
    """Each conversation as the held-out task's item: the prompt as the model is served it, and the
    reference answer (the last assistant turn; empty when there is none)."""
    if not tokenizer.chat_template:
        raise UserError(f"eval: held_out renders prompts with the model's chat template, and {model} has none")
    items = []
    for chat in chats:
        last = chat[-1]["content"].strip() if chat[-1]["role"] == "assistant" else ""
        turns = chat[:-1] if chat[-1]["role"] == "assistant" else chat
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        items.append({"prompt": _without_added_bos(tokenizer, text), "answer": last})
    return items


def _without_added_bos(tokenizer, text: str) -> str:
    """lm-eval tokenizes the prompt with the tokenizer's special tokens; a template that writes the BOS
    itself would then start with two."""
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        ids = tokenizer("x").input_ids
        if ids and ids[0] == tokenizer.bos_token_id:
            return text[len(bos):]
    return text
