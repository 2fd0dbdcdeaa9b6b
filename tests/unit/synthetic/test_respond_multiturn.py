"""Multi-turn `respond`: a user simulator and the answering model take turns, with scripted models,
and the trainer's assistant-only loss learns every answer of such a conversation and no user turn."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from generators.respond import RespondConfig, continue_conversations, simulator_prompt
from tests.unit.synthetic.synthetic_fakes import FakeClient

FIRST = [{"role": "user", "content": "Name a prime number."}, {"role": "assistant", "content": "Seven."}]


def scripted(prefix: str, model: str, failures: dict | None = None):
    """A client answering `<prefix> <k>` to its k-th request, or, for a request of the conversation
    that starts with FIRST, `failures[e]` where e is the exchange the request is for."""
    state = {"k": 0}

    def script(request):
        state["k"] += 1
        text = "\n".join(m["content"] for m in request.messages)
        if FIRST[0]["content"] in text:
            simulating = len(request.messages) == 1
            exchange = text.count("[Assistant]") + 1 if simulating else sum(m["role"] == "user" for m in request.messages)
            if exchange in (failures or {}):
                return failures[exchange]
        return f"{prefix} {state['k']}"

    return FakeClient(script, model=model)


def test_simulator_and_responder_alternate_until_n_exchanges():
    simulator, responder = scripted("follow-up", "sim-model"), scripted("answer", "resp-model")
    system = [{"role": "system", "content": "Be terse."}]
    [c] = continue_conversations(responder, simulator, [system + FIRST], RespondConfig(turns=3, seed=5))
    assert c.reason is None and c.turns == 3 and (c.simulator, c.responder) == ("sim-model", "resp-model")
    assert [m["role"] for m in c.messages] == ["system", "user", "assistant"] * 1 + ["user", "assistant"] * 2
    assert [m["content"] for m in c.messages[3:]] == ["follow-up 1", "answer 1", "follow-up 2", "answer 2"]
    # The simulator reads the transcript so far (never the system turn) through its versioned prompt.
    second = simulator.requests[1].messages[0]["content"]
    assert "[User]\nName a prime number.\n\n[Assistant]\nSeven.\n\n[User]\nfollow-up 1\n\n[Assistant]\nanswer 1" in second
    assert "Be terse." not in second and second.endswith("[User]\n")
    # The responder answers the whole conversation, the system turn included.
    assert [len(r.messages) for r in responder.requests] == [4, 6]
    assert responder.requests[1].messages[-1]["content"] == "follow-up 2"


def test_conversations_already_long_enough_are_left_as_they_are():
    simulator = scripted("follow-up", "sim")
    [c] = continue_conversations(scripted("answer", "resp"), simulator, [FIRST], RespondConfig(turns=1))
    assert c.messages == FIRST and c.reason is None and simulator.requests == []


@pytest.mark.parametrize(
    ("sim_failures", "resp_failures", "reason", "turns"),
    [
        ({2: RuntimeError("HTTP 500")}, {}, "simulator_llm_error", 1),
        ({2: ("a question that goes on and", "length")}, {}, "simulator_truncated", 1),
        ({3: "  "}, {}, "empty_user_turn", 2),
        ({}, {3: ("an answer cut", "length")}, "response_truncated", 2),
        ({}, {2: ""}, "empty_response", 1),
        ({}, {3: RuntimeError("timeout")}, "llm_error", 2),
    ],
)
def test_a_failed_turn_stops_the_conversation_with_its_reason(sim_failures, resp_failures, reason, turns):
    sims, resps = scripted("follow-up", "sim", sim_failures), scripted("answer", "resp", resp_failures)
    ok = [{"role": "user", "content": "Another question."}, {"role": "assistant", "content": "Another answer."}]
    failed, other = continue_conversations(resps, sims, [FIRST, ok], RespondConfig(turns=3))
    assert failed.reason == reason and failed.turns == turns
    assert [m["role"] for m in failed.messages[: 2 * turns]] == ["user", "assistant"] * turns
    # The turn that failed: a simulated user turn is not kept, a question whose answer failed is.
    assert len(failed.messages) == 2 * turns + (0 if reason.startswith(("simulator", "empty_user")) else 1)
    if "error" in reason:
        assert failed.error in ("HTTP 500", "timeout")
    assert other.reason is None and other.turns == 3  # the other conversation goes on without it


def test_simulator_prompt_is_configurable_and_versioned():
    assert simulator_prompt(RespondConfig()).id == "respond.user_simulator@1"
    custom = RespondConfig(turns=2, simulator_prompt="Continue as the user:\n$conversation")
    assert simulator_prompt(custom).id.startswith("respond.user_simulator.custom-")
    assert simulator_prompt(custom).id != simulator_prompt(RespondConfig(simulator_prompt="Go on:\n$conversation")).id
    simulator = scripted("follow-up", "sim")
    continue_conversations(scripted("answer", "resp"), simulator, [FIRST], custom)
    assert simulator.requests[0].messages[0]["content"].startswith("Continue as the user:\n[User]\nName a prime number.")
    with pytest.raises(ValidationError, match=r"\$conversation"):
        RespondConfig(simulator_prompt="Write the next user message.")


def test_assistant_only_loss_learns_every_answer_of_a_three_turn_conversation():
    from pipeline.train.data import IGNORE, ChatEncoder
    from tiny_models.llama import END_OF_TURN, build_tiny_tokenizer

    [c] = continue_conversations(scripted("the answer number", "resp"), scripted("and what about number", "sim"), [FIRST], RespondConfig(turns=3))
    assert c.turns == 3
    tokenizer = build_tiny_tokenizer([m["content"] for m in c.messages] * 10, vocab_size=300)
    enc = ChatEncoder(tokenizer, max_seq_len=512).encode(c.messages)
    # Runs of consecutive learned tokens (targets[t] is the token at t + 1).
    runs, run = [], []
    for t, target in enumerate(enc.targets):
        if target != IGNORE:
            run.append(target)
        elif run:
            runs, run = runs + [run], []
    runs += [run] if run else []
    learned = [tokenizer.decode(r, skip_special_tokens=False) for r in runs]
    answers = [m["content"] for m in c.messages if m["role"] == "assistant"]
    assert learned == [a + END_OF_TURN for a in answers]
    users = [m["content"] for m in c.messages if m["role"] == "user"]
    assert not any(u in text for u in users for text in learned)
