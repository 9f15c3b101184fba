"""Agent apps end to end: a real gateway (keys required), the official openai SDK, the fake
upstream scripted per request body, and real HTTP tools and a real webhook receiver.

One gateway serves every app: each limit is an app of its own (steps, tool calls, tokens,
cost, deadline, loop), plus an app with a failing, a hanging and an irreversible tool."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.agents.receiver import Receiver
from tests.agents.scripts import answer_from_tools, calls, plan
from tests.servers import KeyedGateway, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
HOOK_SECRET = "hook-" + secrets.token_urlsafe(16)
CONFIG = """
[auth]
mode = "required"
[store]
path = "{workdir}/gg.db"
[traces]
flush_interval_ms = 20
[reliability]
max_attempts = 1
breaker_failures = 100000
breaker_min_calls = 100000
[agent]
approval_webhook_url = "{recv}/hook"
approval_webhook_secret_header = "x-hook-secret"
approval_webhook_secret_env = "GG_TEST_HOOK_SECRET"
[providers.up]
type = "openai"
base_url = "{fake}/v1"
timeout_s = 30
[models.m]
deployments = ["up:m"]
[models.pricey]
deployments = ["up:pricey"]
[prices."up:pricey"]
input_per_mtok = 100000
output_per_mtok = 100000

[tools.calculator]
kind = "builtin"
which = "calculator"
[tools.flaky]
kind = "http"
url = "{recv}/fail"
allow_private = true
parameters = {{ type = "object", properties = {{}} }}
[tools.slow]
kind = "http"
url = "{recv}/hang"
allow_private = true
timeout_s = 0.5
parameters = {{ type = "object", properties = {{}} }}
[tools.sleepy]
kind = "http"
url = "{recv}/hang"
allow_private = true
timeout_s = 30
parameters = {{ type = "object", properties = {{}} }}
[tools.send_email]
kind = "http"
method = "POST"
url = "{recv}/send"
allow_private = true
irreversible = true
parameters = {{ type = "object", properties = {{ to = {{ type = "string" }} }}, required = ["to"] }}

[knowledge_bases.docs]
mode = "keyword"

[apps.hybrid]
knowledge_base = "docs"
model = "m"
agent_fallback = true
tools = ["calculator"]

[apps.guarded]
knowledge_base = "docs"
model = "m"
agent_fallback = true
tools = ["calculator"]
guards = {{ leak = "redact", policy = {{ action = "block", deny = ["(?i)launch code"] }} }}

[apps.agent]
mode = "agent"
model = "m"
tools = ["calculator", "flaky", "slow", "send_email"]

[apps.steps]
mode = "agent"
model = "m"
tools = ["calculator"]
agent = {{ max_steps = 2 }}

[apps.toolcalls]
mode = "agent"
model = "m"
tools = ["calculator"]
agent = {{ max_tool_calls = 3 }}

[apps.tokens]
mode = "agent"
model = "m"
tools = ["calculator"]
agent = {{ max_tokens = 100 }}

[apps.cost]
mode = "agent"
model = "pricey"
tools = ["calculator"]
agent = {{ max_cost_usd = 0.5 }}

[apps.deadline]
mode = "agent"
model = "m"
tools = ["sleepy"]
agent = {{ deadline_s = 1.0 }}

[apps.loop]
mode = "agent"
model = "m"
tools = ["calculator"]
agent = {{ loop_repeats = 3 }}

[apps.inflight]
mode = "agent"
model = "m"
tools = ["sleepy"]
"""

KEYS = {
    "asker": ("acme", ["chat"]),
    "asker2": ("acme", ["chat"]),
    "approver": ("acme", ["approve"]),
    "outsider": ("globex", ["chat", "approve"]),
}
USER = [{"role": "user", "content": "What is 2+3*4?"}]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gate(
    fake_upstream_server: FakeUpstream,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KeyedGateway]:
    workdir: Path = tmp_path_factory.mktemp("agents")
    config = CONFIG.format(workdir=workdir, fake=fake_upstream_server.url, recv=receiver.url)
    env = {"GROUNDGATE_ADMIN_KEY": ADMIN_KEY, "GG_TEST_HOOK_SECRET": HOOK_SECRET}
    process = start_gateway(config, workdir, env=env)
    try:
        gate = KeyedGateway(process, ADMIN_KEY)
        gate.make_keys(KEYS)
        yield gate
    finally:
        process.stop()


def agent_of(completion: Any) -> dict[str, Any]:
    extra = completion.model_extra or {}
    agent: dict[str, Any] = extra["groundgate"]["agent"]
    return agent


def upstream_bodies(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests() if r.path.endswith("/chat/completions")]


# -- the loop ----------------------------------------------------------------------------


def test_a_multi_step_run_reaches_its_final_answer(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(
        plan(calls(("calculator", {"expression": "2+3*4"})), answer_from_tools("It is ")),
    )
    completion = gate.sdk("asker").chat.completions.create(model="agent", messages=USER)
    assert completion.choices[0].message.content == "It is 14"
    assert completion.choices[0].finish_reason == "stop"
    agent = agent_of(completion)
    assert agent["status"] == "completed" and agent["stop_reason"] == "final_answer"
    assert agent["steps"] == 2 and agent["tool_calls"] == 1
    assert agent["run_id"].startswith("run_")

    first, second = upstream_bodies(fake_upstream)
    offered = sorted(t["function"]["name"] for t in first["tools"])
    assert offered == ["calculator", "flaky", "send_email", "slow"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "calculator"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_0_0", "content": "14"}

    # The trace holds a span per step and per tool call, and the run's summary.
    trace_id = (completion.model_extra or {})["groundgate"]["trace_id"]
    trace = _trace(gate, trace_id)
    names = [s["name"] for s in trace["spans"]]
    assert names.count("agent.step") == 2 and names.count("agent.tool") == 1
    tool_span = next(s for s in trace["spans"] if s["name"] == "agent.tool")
    assert tool_span["attrs"]["tool"] == "calculator" and tool_span["attrs"]["valid"] is True
    assert trace["attrs"]["agent"]["stop_reason"] == "final_answer"


def test_invalid_arguments_are_told_to_the_model_and_counted(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(
        plan(calls(("calculator", {"expr": "1+1"})), answer_from_tools("Saw: "))
    )
    completion = gate.sdk("asker").chat.completions.create(model="agent", messages=USER)
    text = completion.choices[0].message.content or ""
    assert text.startswith("Saw: Error: invalid arguments for 'calculator'")
    assert "expression" in text
    assert agent_of(completion)["tool_calls"] == 1


def _repeat(name: str, args: dict[str, Any], **usage: int) -> Any:
    """A model that never stops calling ``name`` (new arguments each step, unless fixed)."""

    def turn(step: int, messages: list[dict[str, Any]]) -> Behavior:
        varied = {"expression": f"{step}+1"} if args == {} else args
        return calls((name, varied), **usage)(step, messages)

    return turn


BIG = {"prompt_tokens": 80, "completion_tokens": 30}  # 110 tokens: over the tokens app's 100
SMALL = {"prompt_tokens": 10, "completion_tokens": 10}  # $2 at the pricey model's price


def _two_per_step(step: int, messages: list[dict[str, Any]]) -> Behavior:
    first = ("calculator", {"expression": f"{step}+1"})
    second = ("calculator", {"expression": f"{step}+2"})
    return calls(first, second)(step, messages)


@pytest.mark.parametrize(
    ("app", "turn", "reason", "steps"),
    [
        ("steps", _repeat("calculator", {}), "max_steps", 2),
        ("toolcalls", _two_per_step, "max_tool_calls", 2),
        ("tokens", _repeat("calculator", {}, **BIG), "max_tokens", 1),
        ("cost", _repeat("calculator", {}, **SMALL), "max_cost", 1),
        ("deadline", _repeat("sleepy", {"n": 1}), "deadline", 1),
        ("loop", _repeat("calculator", {"expression": "1+1"}), "loop_detected", 3),
    ],
)
def test_each_limit_stops_the_run_with_its_reason(
    gate: KeyedGateway,
    fake_upstream: FakeUpstream,
    app: str,
    turn: Any,
    reason: str,
    steps: int,
) -> None:
    fake_upstream.respond_with(plan(turn))
    completion = gate.sdk("asker").chat.completions.create(model=app, messages=USER)
    agent = agent_of(completion)
    assert agent["status"] == "stopped" and agent["stop_reason"] == reason, agent
    assert agent["steps"] == steps
    text = completion.choices[0].message.content or ""
    assert "The agent stopped before a final answer" in text
    assert len(upstream_bodies(fake_upstream)) == steps  # never a model call past the limit


def test_a_failing_and_a_hanging_tool_are_error_results_and_the_run_goes_on(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(
        plan(calls(("flaky", {}), ("slow", {})), answer_from_tools("Tools said: "))
    )
    completion = gate.sdk("asker").chat.completions.create(model="agent", messages=USER)
    text = completion.choices[0].message.content or ""
    assert "HTTP 500" in text and "timed out" in text, text
    agent = agent_of(completion)
    assert agent["status"] == "completed" and agent["tool_calls"] == 2


# -- agent fallback --------------------------------------------------------------------


def test_a_pipeline_app_falls_back_to_the_agent_only_when_it_abstains(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    agent = plan(calls(("calculator", {"expression": "2+3*4"})), answer_from_tools("Agent: "))
    grounded = {"text": "I could not find the answer in the provided documents."}

    def respond(path: str, body: Any) -> Behavior | None:
        if isinstance(body, dict) and "tools" not in body:  # the pipeline's own call
            return Behavior(content=grounded["text"])
        return agent(path, body)

    fake_upstream.respond_with(respond)
    completion = gate.sdk("asker").chat.completions.create(model="hybrid", messages=USER)
    assert completion.choices[0].message.content == "Agent: 14"
    extra = (completion.model_extra or {})["groundgate"]
    assert extra["agent"]["stop_reason"] == "final_answer" and extra["source"] == "agent"
    bodies = upstream_bodies(fake_upstream)
    assert len(bodies) == 3
    # The agent starts from the client's own messages, not the grounded prompt.
    assert bodies[1]["messages"][0] == USER[0]

    grounded["text"] = "It is 14 [1]."
    fake_upstream.reset()
    fake_upstream.respond_with(respond)
    completion = gate.sdk("asker").chat.completions.create(model="hybrid", messages=USER)
    assert completion.choices[0].message.content == "It is 14 [1]."
    assert "agent" not in (completion.model_extra or {})["groundgate"]
    assert len(upstream_bodies(fake_upstream)) == 1


def _pipeline_then_agent(pipeline: str, agent: str) -> Any:
    """The pipeline's own call (no tools offered) answers ``pipeline``; the agent's first
    step answers ``agent`` outright."""

    def respond(path: str, body: Any) -> Behavior | None:
        if not path.endswith("/chat/completions") or not isinstance(body, dict):
            return None
        return Behavior(content=agent if "tools" in body else pipeline)

    return respond


def _ask_guarded(gate: KeyedGateway, stream: bool) -> tuple[str, str | None, dict[str, Any]]:
    """The guarded app's answer: its text, finish reason and ``groundgate`` object."""
    client = gate.sdk("asker")
    if not stream:
        completion = client.chat.completions.create(model="guarded", messages=USER)
        choice = completion.choices[0]
        return choice.message.content or "", choice.finish_reason, completion.model_extra or {}
    chunks = list(client.chat.completions.create(model="guarded", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = next(
        (c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason),
        None,
    )
    return text, finish, chunks[-1].model_extra or {}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_fallback_answer_is_redacted_by_the_output_guards(
    gate: KeyedGateway, fake_upstream: FakeUpstream, stream: bool
) -> None:
    abstained = "I could not find the answer in the provided documents."
    fake_upstream.respond_with(_pipeline_then_agent(abstained, "Write to ada@example.org today."))
    text, finish, extra = _ask_guarded(gate, stream)
    assert text == "Write to [EMAIL_1] today.", text
    assert finish == "stop"
    assert extra["groundgate"]["agent"]["status"] == "completed"
    decisions = [(d["guard"], d["action"]) for d in extra["groundgate"]["guards"]["decisions"]]
    assert ("leak", "redact") in decisions


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_fallback_answer_the_output_guards_block_is_withheld_not_retried(
    gate: KeyedGateway, fake_upstream: FakeUpstream, stream: bool
) -> None:
    # The pipeline's answer is blocked (so the agent answers), and so is the agent's.
    fake_upstream.respond_with(
        _pipeline_then_agent("The launch code is 1234 [1].", "Fine: the launch code is 0000.")
    )
    text, finish, extra = _ask_guarded(gate, stream)
    assert text == "The answer was withheld by an output guard (policy).", text
    assert finish == "content_filter"
    assert extra["groundgate"]["agent"]["status"] == "completed"
    # One pipeline call and one agent run of one step: a blocked agent answer never goes
    # back to the agent.
    bodies = upstream_bodies(fake_upstream)
    assert ["tools" in b for b in bodies] == [False, True]


# -- client tools ------------------------------------------------------------------------

CLIENT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_client_side_tools_pass_through_a_plain_model_unchanged(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    proposed = {
        "id": "call_w1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    fake_upstream.script(Behavior(tool_calls=[proposed]))
    completion = gate.sdk("asker").chat.completions.create(
        model="m",
        messages=USER,
        tools=[CLIENT_TOOL],  # type: ignore[list-item]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_w1",
        "get_weather",
        '{"city": "Oslo"}',
    )
    assert upstream_bodies(fake_upstream)[0]["tools"] == [CLIENT_TOOL]
    assert "agent" not in (completion.model_extra or {})["groundgate"]


def test_client_tools_sent_to_an_agent_app_are_refused(gate: KeyedGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gate.sdk("asker").chat.completions.create(
            model="agent",
            messages=USER,
            tools=[CLIENT_TOOL],  # type: ignore[list-item]
        )
    assert "calls its own tools" in str(caught.value)


# -- approval ----------------------------------------------------------------------------


def _email_plan() -> Any:
    return plan(calls(("send_email", {"to": "a@example.com"})), answer_from_tools("Done: "))


def _pending(gate: KeyedGateway, who: str = "asker") -> dict[str, Any]:
    raw = gate.sdk(who).chat.completions.with_raw_response.create(model="agent", messages=USER)
    assert raw.status_code == 202
    body: dict[str, Any] = raw.http_response.json()
    agent = body["groundgate"]["agent"]
    assert agent["status"] == "pending_approval"
    assert raw.headers["location"] == f"/v1/runs/{agent['run_id']}"
    assert body["object"] == "chat.completion"
    assert agent["run_id"] in body["choices"][0]["message"]["content"]
    return body


def test_an_irreversible_call_waits_for_approval_then_runs_with_edited_arguments(
    gate: KeyedGateway, fake_upstream: FakeUpstream, receiver: Receiver
) -> None:
    fake_upstream.respond_with(_email_plan())
    sent_before = len(receiver.sent)
    hooks_before = len(receiver.hooks)
    body = _pending(gate)
    agent = body["groundgate"]["agent"]
    run_id = agent["run_id"]
    assert [(p["name"], p["arguments"]) for p in agent["pending"]] == [
        ("send_email", {"to": "a@example.com"})
    ]
    assert len(receiver.sent) == sent_before  # nothing ran

    # The webhook told a reviewer, with the secret header.
    hook = receiver.wait_for_hooks(hooks_before + 1)[-1]
    assert hook["run_id"] == run_id and hook["tenant"] == "acme" and hook["app"] == "agent"
    assert hook["pending"][0]["name"] == "send_email"
    assert hook["url"].endswith(f"/v1/runs/{run_id}") and hook["_secret"] == HOOK_SECRET

    # Who sees it: the key that started it, approvers of its tenant; nobody else.
    assert gate.get("asker", f"/v1/runs/{run_id}").json()["status"] == "pending_approval"
    for who in ("asker2", "outsider"):
        assert gate.get(who, f"/v1/runs/{run_id}").status_code == 404
    assert gate.get("asker", "/v1/runs").status_code == 403
    listed = [r["id"] for r in gate.get("approver", "/v1/runs").json()["data"]]
    assert run_id in listed
    assert run_id not in [r["id"] for r in gate.get("outsider", "/v1/runs").json()["data"]]
    assert gate.post("asker", f"/v1/runs/{run_id}/approve").status_code == 403
    assert gate.post("outsider", f"/v1/runs/{run_id}/approve").status_code == 404

    bad = gate.post("approver", f"/v1/runs/{run_id}/approve", {"arguments": {"call_0_0": {}}})
    assert bad.status_code == 400 and "to" in bad.json()["error"]["message"]

    edited = {"arguments": {"call_0_0": {"to": "b@example.com"}}, "note": "right address"}
    approved = gate.post("approver", f"/v1/runs/{run_id}/approve", edited)
    assert approved.status_code == 200, approved.text
    run = approved.json()
    assert run["status"] == "completed" and run["stop_reason"] == "final_answer"
    assert run["answer"].startswith("Done: ")
    assert run["decided_by"] == gate.keys["approver"]["id"] and run["note"] == "right address"
    assert receiver.sent[sent_before:] == [{"to": "b@example.com"}]

    for verb in ("approve", "reject"):
        again = gate.post("approver", f"/v1/runs/{run_id}/{verb}")
        assert again.status_code == 409, again.text
    # The asker reads the final answer.
    assert gate.get("asker", f"/v1/runs/{run_id}").json()["answer"] == run["answer"]


def test_a_rejected_call_is_refused_to_the_model_which_goes_on(
    gate: KeyedGateway, fake_upstream: FakeUpstream, receiver: Receiver
) -> None:
    fake_upstream.respond_with(_email_plan())
    sent_before = len(receiver.sent)
    run_id = _pending(gate)["groundgate"]["agent"]["run_id"]
    rejected = gate.post("approver", f"/v1/runs/{run_id}/reject", {"note": "not today"})
    assert rejected.status_code == 200, rejected.text
    run = rejected.json()
    assert run["status"] == "completed"
    assert "refused by a human reviewer (not today)" in run["answer"]
    assert len(receiver.sent) == sent_before


def test_a_model_that_insists_on_a_rejected_call_is_a_loop_across_pauses(
    gate: KeyedGateway, fake_upstream: FakeUpstream, receiver: Receiver
) -> None:
    # The model proposes the same irreversible call at every step: a reviewer is asked
    # loop_repeats - 1 times (3 - 1), then the run stops as a loop instead of asking again.
    fake_upstream.respond_with(plan(calls(("send_email", {"to": "a@example.com"}))))
    sent_before = len(receiver.sent)
    run_id = _pending(gate)["groundgate"]["agent"]["run_id"]
    first = gate.post("approver", f"/v1/runs/{run_id}/reject", {"note": "no"}).json()
    assert first["status"] == "pending_approval"
    second = gate.post("approver", f"/v1/runs/{run_id}/reject", {"note": "still no"}).json()
    assert (second["status"], second["stop_reason"]) == ("stopped", "loop_detected"), second
    assert len(receiver.sent) == sent_before


# -- streaming ---------------------------------------------------------------------------


def test_a_streamed_run_sends_progress_comments_the_sdk_ignores(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(
        plan(calls(("calculator", {"expression": "6*7"})), answer_from_tools("It is "))
    )
    stream = gate.sdk("asker").chat.completions.create(model="agent", messages=USER, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "It is 42"
    last = (chunks[-1].model_extra or {})["groundgate"]["agent"]
    assert last["status"] == "completed" and last["steps"] == 2

    body = {"model": "agent", "messages": USER, "stream": True}
    with (
        gate.http("asker") as client,
        client.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        lines = [line for line in resp.iter_lines() if line]
    progress = [json.loads(x.split(" ", 2)[2]) for x in lines if x.startswith(": groundgate-agent")]
    assert [p["type"] for p in progress] == ["step", "tool", "step", "done"]
    assert progress[1]["name"] == "calculator" and progress[1]["ok"] is True
    assert lines[-1] == "data: [DONE]"


def test_a_streamed_run_that_needs_approval_ends_with_the_pending_status(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(_email_plan())
    stream = gate.sdk("asker").chat.completions.create(model="agent", messages=USER, stream=True)
    chunks = list(stream)
    agent = (chunks[-1].model_extra or {})["groundgate"]["agent"]
    assert agent["status"] == "pending_approval" and agent["pending"][0]["name"] == "send_email"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert agent["run_id"] in text


def test_a_run_is_listed_while_it_runs_and_one_whose_client_left_is_stored_stopped(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(plan(calls(("sleepy", {}))))  # a tool that takes 30 s
    body = {"model": "inflight", "messages": USER, "stream": True}
    with (
        gate.http("asker") as client,
        client.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        # The first step proposed the slow call: the run is in flight, and stored as such.
        lines = resp.iter_lines()  # kept: an iterator dropped closes the response
        next(line for line in lines if line.startswith(": groundgate-agent"))
        listed = gate.get("approver", "/v1/runs", status="running", app="inflight").json()
        assert [r["status"] for r in listed["data"]] == ["running"], listed
        run_id = listed["data"][0]["id"]
        assert gate.get("asker", f"/v1/runs/{run_id}").json()["status"] == "running"
    # The client left mid-run: the run is stored as stopped, and says why.
    run = _run_once(gate, run_id, lambda r: r["status"] != "running")
    assert (run["status"], run["stop_reason"]) == ("stopped", "cancelled"), run
    assert "the client went away" in run["answer"]
    assert run["usage"]["steps"] == 1 and run["usage"]["tool_calls"] == 1
    still = gate.get("approver", "/v1/runs", status="running", app="inflight").json()["data"]
    assert still == []


def _run_once(
    gate: KeyedGateway, run_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The run as soon as ``done`` holds for it (its last state after 10 s if never)."""
    deadline = time.monotonic() + 10
    while True:
        run: dict[str, Any] = gate.get("approver", f"/v1/runs/{run_id}").json()
        if done(run) or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def _trace(gate: KeyedGateway, trace_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        resp = gate.get("asker", f"/v1/traces/{trace_id}")
        if resp.status_code == 200:
            found: dict[str, Any] = resp.json()
            return found
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} never recorded")
