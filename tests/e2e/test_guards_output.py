"""Output guards end to end: a real gateway, the openai SDK, the fake upstream answering what
each test needs. Leak, policy and groundedness, each action, whole and streamed; a streamed
secret split across chunks redacted while the rest of the answer streams; the groundedness
score in the response's ``groundgate`` object and in the trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from groundgate.testing.fake_text import pieces
from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess, start_gateway, wait_for_trace

EMAIL = "ada.lovelace@example.org"
SECRET = "sk-proj-" + "Zq8vR2mT9xK4wL7nB3cH6jF1dS5gA0pE"
ACTIONS = ("flag", "redact", "block", "review")
GROUNDED_ACTIONS = ("flag", "remove", "abstain", "review")
NOTICE = "The answer was withheld by an output guard ({guard})."
ABSTENTION = "I could not find the answer in the provided documents."

CONFIG = """
[cache]
enabled = false
[traces]
flush_interval_ms = 20
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.plain]
deployments = ["up:m"]
"""
for _action in ACTIONS:
    CONFIG += f"""
[models.leak-{_action}]
deployments = ["up:m"]
guards = {{{{ leak = "{_action}" }}}}
[models.policy-{_action}]
deployments = ["up:m"]
guards = {{{{ policy = {{{{ action = "{_action}", deny = ['project\\s+x'] }}}} }}}}
"""
for _action in GROUNDED_ACTIONS:
    CONFIG += f"""
[apps.grounded-{_action}]
knowledge_base = "handbook"
model = "plain"
guards = {{{{ groundedness = "{_action}" }}}}
"""
# Groundedness on a plain model has nothing to score: the answer is not even looked at.
CONFIG += """
[models.grounded-only]
deployments = ["up:m"]
guards = {{ groundedness = "abstain" }}
"""

HANDBOOK = [
    {
        "id": "vacation",
        "title": "Vacation policy",
        "text": "Employees receive 28 days of paid vacation per year. Unused vacation days "
        "expire at the end of March of the following year.",
    },
    {
        "id": "expenses",
        "title": "Expense policy",
        "text": "Travel expenses are reimbursed within 14 days of submitting the receipts. "
        "Hotel costs are capped at 180 euros per night.",
    },
]
SUPPORTED = "Employees receive 28 days of paid vacation per year [1]."
INVENTED = "The CEO Bob Smith gets 45 days and a company Porsche."
# [9] cites nothing: the app's prompt numbers two sources at most.
GROUNDED_ANSWER = f"{SUPPORTED} {INVENTED} [9]"

ANSWERS = {
    "leak": f"Sure. The admin is reachable at {EMAIL} and the deploy key is {SECRET}. Bye.",
    "policy": "Project  X launches in May. Keep it quiet.",
}
REDACTED = {
    "leak": "Sure. The admin is reachable at [EMAIL_1] and the deploy key is [SECRET_1]. Bye.",
    "policy": "[POLICY_1] launches in May. Keep it quiet.",
}
FOUND = {"leak": (EMAIL, SECRET), "policy": ("Project  X",)}


@pytest.fixture(scope="module")
def guarded(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("guards-out")
    process = start_gateway(CONFIG.format(fake=fake_upstream_server.url), workdir)
    try:
        resp = httpx.post(
            f"{process.url}/v1/knowledge-bases/handbook/documents",
            json={"documents": HANDBOOK},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(guarded: GatewayProcess, fake_upstream: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=guarded.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def ask(
    client: openai.OpenAI, model: str, stream: bool, question: str = "Tell me."
) -> tuple[str, str | None, dict[str, Any], int]:
    """(content, finish_reason, the groundgate object, chunks that carried text)."""
    messages: Any = [{"role": "user", "content": question}]
    if not stream:
        reply = client.chat.completions.create(model=model, messages=messages)
        choice = reply.choices[0]
        extra = (reply.model_extra or {})["groundgate"]
        return choice.message.content or "", choice.finish_reason, extra, 1
    chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True))
    deltas = [c.choices[0] for c in chunks if c.choices]
    text = "".join(d.delta.content or "" for d in deltas)
    finish = next((d.finish_reason for d in deltas if d.finish_reason), None)
    carried = sum(1 for d in deltas if d.delta.content)
    return text, finish, (chunks[-1].model_extra or {})["groundgate"], carried


def decisions(groundgate: dict[str, Any]) -> list[str]:
    return [f"{d['guard']}={d['action']}" for d in groundgate["guards"]["decisions"]]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("guard", ["leak", "policy"])
def test_leak_and_policy_actions(
    client: openai.OpenAI, fake_upstream: FakeUpstream, guard: str, action: str, stream: bool
) -> None:
    fake_upstream.set_default(Behavior(content=ANSWERS[guard], stream_chunks=9))
    text, finish, groundgate, _ = ask(client, f"{guard}-{action}", stream)
    # A review action is acted on by the review stage (audit mode by default): queued.
    queued = ["review=audit"] if action == "review" else []
    assert decisions(groundgate) == [f"{guard}={action}", *queued]
    if queued:
        assert groundgate["guards"]["review"]["id"].startswith("rev_")
    if action == "redact":
        assert text == REDACTED[guard] and finish == "stop"
    elif action == "block":
        assert text == NOTICE.format(guard=guard) and finish == "content_filter"
    else:  # flag, review: recorded, the answer unchanged
        assert text == ANSWERS[guard] and finish == "stop"
    if action in ("redact", "block"):
        assert not any(found in text for found in FOUND[guard])
    assert not any(found in str(groundgate) for found in FOUND[guard])


def test_a_streamed_secret_split_across_chunks_is_redacted_while_the_rest_streams(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    filler = "This sentence is filler and safe to stream at once. " * 12
    content = f"{filler}Mail {EMAIL} with the key {SECRET} today. {filler}"
    # Pieces of ~25 characters: the address and the key each arrive in more than one.
    upstream_pieces = pieces(content, 60)
    at = content.index(EMAIL)
    starts = {len("".join(upstream_pieces[:i])) for i in range(len(upstream_pieces))}
    assert any(at < s < at + len(EMAIL) for s in starts)
    key_at = content.index(SECRET)
    assert any(key_at < s < key_at + len(SECRET) for s in starts)
    fake_upstream.set_default(Behavior(content=content, stream_chunks=60))
    text, finish, groundgate, carried = ask(client, "leak-redact", stream=True)
    assert text == f"{filler}Mail [EMAIL_1] with the key [SECRET_1] today. {filler}"
    assert finish == "stop" and decisions(groundgate) == ["leak=redact"]
    assert groundgate["guards"]["decisions"][0]["detail"] == {"types": {"EMAIL": 1, "SECRET": 1}}
    # Not held whole: the text went out in many pieces (all but the window as it came).
    assert carried > 10


def test_groundedness_on_a_plain_model_leaves_the_answer_alone(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(content=GROUNDED_ANSWER))
    text, _, groundgate, _ = ask(client, "grounded-only", stream=True)
    assert text == GROUNDED_ANSWER and "guards" not in groundgate


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("action", GROUNDED_ACTIONS)
def test_groundedness_actions(
    client: openai.OpenAI,
    guarded: GatewayProcess,
    fake_upstream: FakeUpstream,
    action: str,
    stream: bool,
) -> None:
    fake_upstream.set_default(Behavior(content=GROUNDED_ANSWER, stream_chunks=7))
    question = "How many vacation days do employees get?"
    text, _, groundgate, _ = ask(client, f"grounded-{action}", stream, question)
    expected = {
        "flag": f"{SUPPORTED} {INVENTED}",  # the phantom [9] removed, always
        "review": f"{SUPPORTED} {INVENTED}",
        "remove": SUPPORTED,
        "abstain": ABSTENTION,
    }[action]
    assert text == expected
    assert groundgate["abstained"] is (action == "abstain")
    queued = ["review=audit"] if action == "review" else []
    assert decisions(groundgate) == ["citations=remove", f"groundedness={action}", *queued]
    guards = groundgate["guards"]
    assert 0 < guards["groundedness"] < 0.9 and guards["unsupported"] == [INVENTED]
    assert guards["decisions"][1]["detail"] == {"unsupported": 1, "sentences": 2}
    if action == "flag" and not stream:
        assert [c["document_id"] for c in groundgate["citations"]] == ["vacation"]
        trace = wait_for_trace(guarded.url, groundgate["trace_id"])
        assert trace["attrs"]["guards"]["groundedness"] == guards["groundedness"]
        assert trace["attrs"]["guards"]["unsupported"] == [INVENTED]


def test_a_supported_answer_passes_with_its_score(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(content=SUPPORTED))
    text, _, groundgate, _ = ask(client, "grounded-abstain", False, "How many vacation days?")
    assert text == SUPPORTED and groundgate["abstained"] is False
    assert groundgate["guards"]["groundedness"] >= 0.9 and groundgate["guards"]["decisions"] == []
