"""The `transformers` backend: batched local generation for small models and machines without vLLM.

Requests are grouped by sampling parameters (Hugging Face `generate` takes one set per call), rendered
with the model's own chat template, left-padded (a decoder-only model continues from the right end),
and generated in batches of `batch_size`. Results follow the OpenAI conventions the other backends
return: stop strings cut from the text, `finish_reason` "length" when max_tokens ran out, token
usage with the prompt counted once and every sample's tokens counted.

A request's `seed` seeds its batch (torch cannot seed rows of one batch separately), so a rerun of
the same requests is reproducible, but a text need not match what vLLM gives for that seed.

There is no guided decoding here: a request's `guide` is dropped (free text, as `structured: auto`
allows) or, when required (`structured: on`), the request fails saying so.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from generators.client import UNGUIDED, Choice, FailureWindow, OnResponse, Request, Response, SamplingParams, Usage, refuses_guide
from generators.llm_config import TransformersConfig



def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop string (excluded, as in the OpenAI API), and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class TransformersClient:
    def __init__(self, config: TransformersConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.model = config.model
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
        self.lm = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype).to(config.device).eval()
        eos = self.lm.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos_ids.add(self.tokenizer.eos_token_id)
        self.failures = FailureWindow(config.failure_window, config.max_failure_rate, f"{config.model} (transformers)")

    def generate(self, requests: Sequence[Request], *, on_response: OnResponse | None = None) -> list[Response]:
        results: list[Response | None] = [None] * len(requests)
        groups: dict[SamplingParams, list[int]] = {}
        for i, r in enumerate(requests):
            if refuses_guide(r):
                results[i] = Response.failed(self.model, UNGUIDED.format("transformers"))
                if on_response:
                    on_response(i, results[i])
                self.failures.record(results[i])
                continue
            groups.setdefault(dataclasses.replace(r.params, seed=None, guide=None), []).append(i)
        for idxs in groups.values():
            for start in range(0, len(idxs), self.config.batch_size):
                batch = idxs[start : start + self.config.batch_size]
                try:
                    responses = self._generate_batch([requests[i] for i in batch])
                except Exception as exc:  # one bad batch (e.g. a prompt too long for the model) must not end the run
                    responses = [Response.failed(self.model, f"{type(exc).__name__}: {exc}") for _ in batch]
                for i, response in zip(batch, responses):
                    results[i] = response
                    if on_response:
                        on_response(i, response)
                    self.failures.record(response)
        return results  # type: ignore[return-value]

    def _prompt_text(self, request: Request) -> str:
        if request.endpoint == "chat":
            return self.tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        return request.prompt

    def _generate_batch(self, requests: list[Request]) -> list[Response]:
        import torch

        p = requests[0].params
        texts = [self._prompt_text(r) for r in requests]
        # A chat template writes its own BOS; a raw prompt gets the tokenizer's usual special tokens.
        add_special = requests[0].endpoint == "completion"
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=add_special).to(self.config.device)
        prompt_logprobs = self._prompt_logprobs(enc) if p.prompt_logprobs else [None] * len(requests)
        if p.prompt_logprobs and p.max_tokens == 0:  # score only
            return [Response([Choice("", "length", prompt_logprobs=lps)], self.model, Usage(len(lps), 0))
                    for lps in prompt_logprobs]
        seeds = [r.params.seed for r in requests if r.params.seed is not None]
        if seeds:
            torch.manual_seed(hash(tuple(seeds)) & 0x7FFFFFFF)
        sample = p.temperature > 0
        kwargs = dict(
            max_new_tokens=p.max_tokens,
            do_sample=sample,
            num_return_sequences=p.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids | set(p.stop_token_ids)),
            return_dict_in_generate=True,
            output_scores=p.logprobs is not None,
        )
        if sample:
            kwargs.update(temperature=p.temperature, top_p=p.top_p, top_k=0)
        if p.stop:
            kwargs.update(stop_strings=list(p.stop), tokenizer=self.tokenizer)
        with torch.no_grad():
            out = self.lm.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        new_tokens = out.sequences[:, prompt_len:]
        scores = None
        if p.logprobs is not None:
            scores = self.lm.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        prompt_counts = enc["attention_mask"].sum(dim=1).tolist()

        responses = []
        for row, request in enumerate(requests):
            choices, completion_tokens = [], 0
            for k in range(p.n):
                seq = row * p.n + k
                choice, used = self._choice(new_tokens[seq].tolist(), p, scores[seq].tolist() if scores is not None else None)
                choice.prompt_logprobs = prompt_logprobs[row]
                choices.append(choice)
                completion_tokens += used
            responses.append(Response(choices=choices, model=self.model, usage=Usage(int(prompt_counts[row]), completion_tokens)))
        return responses

    def _prompt_logprobs(self, enc) -> list[list[float | None]]:
        """Each prompt token's log-prob given the tokens before it (None for the first), as vLLM gives them.

        The batch is left-padded, so positions are counted from each row's first real token: the scores
        of a padded row equal those of the row alone.
        """
        import torch

        mask = enc["attention_mask"]
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = self.lm(input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions).logits
        result = []
        for row in range(logits.shape[0]):
            start = int((mask[row] == 0).sum())  # left padding
            ids = enc["input_ids"][row, start:]
            logprobs = torch.log_softmax(logits[row, start:-1].float(), dim=-1).gather(1, ids[1:, None])[:, 0]
            result.append([None, *logprobs.tolist()])
        return result

    def _choice(self, tokens: list[int], p: SamplingParams, logprobs: list[float] | None) -> tuple[Choice, int]:
        """Decode the tokens up to the end of this sample; return the choice and the tokens it used.

        A sample ends at an end-of-turn/EOS token or one of `stop_token_ids` (counted, as vLLM counts it),
        at the padding `generate` writes after a sequence finished early, or at a stop string (tokens up
        to the one completing it).
        """
        ends = self.eos_ids | set(p.stop_token_ids)
        used, finish = len(tokens), "length"
        for j, t in enumerate(tokens):
            if t in ends:
                used, finish = j + 1, "stop"
                break
            if t == self.tokenizer.pad_token_id:
                used, finish = j, "stop"
                break
        content = [t for t in tokens[:used] if t not in ends]
        text, stopped = cut_at_stop(self.tokenizer.decode(content, skip_special_tokens=True), p.stop)
        if stopped:
            finish = "stop"
            used = next(k for k in range(1, len(content) + 1)
                        if cut_at_stop(self.tokenizer.decode(content[:k], skip_special_tokens=True), p.stop)[1])
        return Choice(text=text, finish_reason=finish, logprobs=logprobs[:used] if logprobs is not None else None), used

    def close(self) -> None:
        self.lm = None
