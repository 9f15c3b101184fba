"""Cache identities: what must share a key, and what must not."""

from __future__ import annotations

from typing import Any

from groundgate.cache.keys import MAX_NORMALIZED_CHARS, identify, is_sampled

QUESTION = [{"role": "user", "content": "What is the refund window?"}]


def ident(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "target": "support",
        "messages": QUESTION,
        "params": {"temperature": 0},
        "app": {"prompt": "grounded-answer@1", "knowledge_base": "docs"},
        "kb_version": "1700000000.0:3",
    }
    fields.update(overrides)
    return identify(**fields)


def test_same_request_same_key_and_cosmetic_differences_collapse() -> None:
    base = ident()
    assert ident().key == base.key
    variants = [
        [{"role": "user", "content": "  what is the REFUND window ? "}],
        [{"role": "user", "content": "Hi, what is the refund window, please?"}],
    ]
    for messages in variants:
        assert ident(messages=messages).key == base.key
    # 0 and 0.0 are one temperature; transport-only fields do not count.
    assert ident(params={"temperature": 0.0, "stream": True, "user": "u1"}).key == base.key


def test_everything_that_shapes_an_answer_changes_the_key() -> None:
    base = ident()
    changed = [
        ident(tenant="globex"),
        ident(target="sales"),
        ident(app={"prompt": "grounded-answer@2", "knowledge_base": "docs"}),
        ident(kb_version="1700000000.0:4"),
        ident(params={"temperature": 0, "max_tokens": 50}),
        ident(
            params={"temperature": 0, "tools": [{"type": "function", "function": {"name": "f"}}]}
        ),
        ident(params={"temperature": 0, "response_format": {"type": "json_object"}}),
        ident(messages=[{"role": "system", "content": "Be brief."}, *QUESTION]),
        ident(messages=[{"role": "user", "content": "What is the refund window for shoes?"}]),
    ]
    keys = {base.key, *(c.key for c in changed)}
    assert len(keys) == len(changed) + 1
    # The partition (the semantic index) differs for all but the question change.
    partitions = {c.scope.partition for c in changed[:-1]}
    assert base.scope.partition not in partitions and len(partitions) == len(changed) - 1
    assert changed[-1].scope.partition == base.scope.partition


def test_only_single_turn_text_questions_are_semantic() -> None:
    assert ident().single_turn
    assert ident(messages=[{"role": "system", "content": "x"}, *QUESTION]).single_turn
    conversation = [
        {"role": "user", "content": "Tell me about refunds."},
        {"role": "assistant", "content": "Refunds are possible."},
        {"role": "user", "content": "And the window?"},
    ]
    follow_up = ident(messages=conversation)
    assert not follow_up.single_turn and follow_up.question == "And the window?"
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert not ident(messages=parts).single_turn and ident(messages=parts).question == ""
    tool_result = [*QUESTION, {"role": "tool", "tool_call_id": "c1", "content": "42"}]
    assert ident(messages=tool_result).question == ""


def test_sampled_means_temperature_above_zero_or_unset() -> None:
    assert is_sampled({}) and is_sampled({"temperature": 0.7})
    assert not is_sampled({"temperature": 0}) and not is_sampled({"temperature": 0.0})
    assert is_sampled({"temperature": "hot"})  # not a number: never assume determinism


def test_long_questions_are_keyed_on_their_exact_text() -> None:
    """Past MAX_NORMALIZED_CHARS a question is not normalised (issue 12: that work grew with
    the text, on the event loop) and not looked up semantically; its key is its exact text's,
    in a key space no short question shares."""

    def asked(text: str) -> Any:
        return ident(messages=[{"role": "user", "content": text}])

    long = "What is the refund window? " * (MAX_NORMALIZED_CHARS // 20)
    first = asked(long)
    assert first.key == asked(long).key
    assert first.normalized == "" and not first.single_turn
    # Differences normalisation would erase still count: every long text is its own key...
    others = [long.upper(), long + "?", long[:-1] + "x", " " + long]
    assert len({first.key, *(asked(text).key for text in others)}) == 1 + len(others)
    # ...while questions within the bound still collapse (and stay semantic).
    short = "What is the refund window?" + " " * (MAX_NORMALIZED_CHARS - 30)
    assert asked(short).key == ident().key and asked(short).single_turn


def test_huge_whole_numbers_are_keyed_not_crashed_on() -> None:
    # A whole float past 64 bits (a fuzzer's -2.8e187 in a message) once turned into an int
    # that orjson cannot write: a 500 on every such request.
    messages = [{"role": "user", "content": "x", "extra": {"n": -2.8e187}}, *QUESTION]
    assert ident(messages=messages).key != ident().key
    assert ident(params={"temperature": 0, "seed": 1e300}).key != ident().key
