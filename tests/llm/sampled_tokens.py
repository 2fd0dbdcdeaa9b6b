"""Which token of a greedy answer a stop-token test can stop at."""


def first_new_clean_token(ids: list[int], tokenizer, text: str) -> int:
    """The first position, after the first token, whose token has not come before and whose decoded
    prefix is the answer's own text: `ids` are the answer re-tokenized, which match the sampled tokens
    only where the text round-trips (a tiny model samples stray byte pieces)."""
    return next(k for k in range(1, len(ids)) if ids[k] not in ids[:k] and text.startswith(tokenizer.decode(ids[: k + 1])))
