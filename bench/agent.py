"""Agents: a suite of scripted multi-step tasks through a real gateway, and the gateway's CPU
per agent step.

    python bench/agent.py [--runs 200] [--json OUT]

Method. The fake upstream runs in this process; each agent app has its own upstream model,
whose script picks every reply from the request body (the step is the number of assistant
turns already in it), so the model "reads" the tool results it was sent and decides from
them. The tools are the gateway's own: built-ins (``search_kb`` over a small knowledge base
ingested through the API, ``calculator``), HTTP tools on a local tool server
(``agent_tools.py``: one that fails then succeeds, one that hangs, one whose result carries an
injection, a slow one that shows overlap, an irreversible one) and an MCP server over stdio
(``groundgate.testing.mcp_server``, spawned by the gateway). The gateway is a real
``groundgate serve`` subprocess (auth open: the local administrator may approve).

Tasks (``details.tasks``). Each drives one request (whole, streamed, or paused for approval
and then approved or rejected over ``/v1/runs``) and passes when: the HTTP statuses are as
expected; the run (read back with ``GET /v1/runs/{id}``) ends with the expected status and
stop reason; the tools it called, in order, are the expected ones; the answer holds (or does
not hold) the expected text; the effects seen at the tool servers are right; and the run ended
within its limits (steps, tool calls, elapsed time under ``deadline_s`` plus 0.5 s, tokens and
cost before its last step under their limits, request wall time under the deadline plus 5 s).

``irreversible_without_approval``: calls that reached an irreversible tool without an
approval, counted where they land: the tool server's irreversible endpoint checks each call's
``ref`` against the refs this benchmark approved before it approved them; the MCP server's
``calls`` tool reports whether ``delete_item`` was ever served before its approval.

``cpu_ms_per_step``: a second gateway with only the measured apps (no guards, no MCP); the
fake upstream answers at once. ``--runs`` agent runs of 4 model steps each (3 calculator
calls, then the answer), sent one at a time after a warm-up; the gateway process's CPU time
(psutil, user + system) over the batch divided by the model steps. Nothing is subtracted: it
includes the client's HTTP request and response, the pipeline stages, each step's upstream
HTTP call (request built, response parsed), the loop, argument validation, the builtin
calculator's dispatch, the run stored once it ends and its trace written. For reference, the
same for plain (non-agent) chat requests to the same upstream, per request; and the marginal
CPU of one more step, from runs of 2 and of 8 steps; and 4-step runs 8 at a time. Median
of five rounds each. Bar:
``cpu_ms_per_step`` <= 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import groundgate
from _harness import Server, start_gateway, temp_dir
from agent_tools import (
    Script,
    ToolServer,
    answer,
    by_model,
    calls,
    plan,
    tool_texts,
)
from groundgate.guards.indirect import DROPPED, FENCE_OPEN
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

SRC = str(Path(groundgate.__file__).parents[1])
PYTHON = sys.executable
DEADLINE_S = 10.0  # every app's default deadline (a task may set its own)

BASE = """
[server]
log_level = "warning"
[store]
path = "{workdir}/gg.db"
[traces]
flush_interval_ms = 50
[reliability]
max_attempts = 1
[providers.up]
type = "openai"
base_url = "%(fake)s/v1"
timeout_s = 30
max_connections = 256
"""

TOOLS = """
[knowledge_bases.kb]
mode = "keyword"
[tools.search_kb]
kind = "builtin"
which = "search_kb"
knowledge_base = "kb"
top_k = 2
[tools.calculator]
kind = "builtin"
which = "calculator"
[tools.once]
kind = "builtin"
which = "calculator"
max_calls = 1
[tools.flaky]
kind = "http"
url = "%(tools)s/flaky"
allow_private = true
parameters = { type = "object", properties = { job = { type = "string" } }, required = ["job"] }
[tools.hang]
kind = "http"
url = "%(tools)s/hang"
allow_private = true
timeout_s = 0.5
parameters = { type = "object", properties = {} }
[tools.sleeper]
kind = "http"
url = "%(tools)s/hang"
allow_private = true
timeout_s = 30
parameters = { type = "object", properties = {} }
[tools.slow]
kind = "http"
url = "%(tools)s/slow"
allow_private = true
[tools.slow.parameters]
type = "object"
properties = { tag = { type = "string" }, ms = { type = "integer" } }
required = ["tag", "ms"]
[tools.news]
kind = "http"
url = "%(tools)s/news"
allow_private = true
parameters = { type = "object", properties = { topic = { type = "string" } }, required = ["topic"] }
[tools.send_payment]
kind = "http"
method = "POST"
url = "%(tools)s/send"
allow_private = true
irreversible = true
[tools.send_payment.parameters]
type = "object"
properties = { ref = { type = "string" }, to = { type = "string" }, amount = { type = "number" } }
required = ["ref", "to", "amount"]
[mcp_servers.mcp]
transport = "stdio"
command = "%(python)s"
args = ["-m", "groundgate.testing.mcp_server", "--stdio"]
env = { PYTHONPATH = "%(src)s" }
irreversible = ["delete_item"]
timeout_s = 10
"""

KB_DOCS = [
    {
        "id": "warehouse.md",
        "title": "Warehouse 7",
        "text": "Warehouse 7 stores 1200 crates of tiles. Each crate weighs 25 kg when full.",
    },
    {
        "id": "ferry.md",
        "title": "Ferry",
        "text": "The ferry to the island leaves every day at 9:15 from pier 4.",
    },
]
QUESTION = [{"role": "user", "content": "What do the crates in warehouse 7 weigh in total?"}]


# -- the tasks ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one task's requests got back."""

    statuses: list[int] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict)  # the first response's body
    agent: dict[str, Any] | None = None  # its groundgate.agent
    run: dict[str, Any] | None = None  # GET /v1/runs/{id} at the end
    answer: str = ""
    progress: list[dict[str, Any]] = field(default_factory=list)  # streamed progress events
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


Check = Callable[[Outcome, ToolServer], list[str]]


@dataclass
class Task:
    name: str
    about: str
    script: Script
    tools: list[str]
    status: str = "completed"  # the run's status at the end
    stop: str | None = "final_answer"  # None: no run is expected (a pipeline answer)
    called: list[str] | None = None  # tool names in the run's step log, in order
    drive: str = "chat"  # chat | stream | approve | reject | approve_edit | approve_twice
    contains: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    passages: str | None = None  # the app's guards.passages action
    fallback_answer: str | None = None  # a pipeline app with agent_fallback: its own answer
    price: float | None = None  # $ per million tokens, in and out
    edit: dict[str, Any] | None = None  # approve_edit: the pending call's new arguments
    decisions: int = 1  # approve: how many times the run pauses and is approved
    first_status: int | None = None  # the first response's status (None: 200, or 202)
    check: Check | None = None

    @property
    def model(self) -> str:
        return f"m_{self.name}"


def varied(name: str, **usage: int) -> Script:
    """A model that calls ``name`` at every step with new arguments (never answers)."""

    def turn(step: int, messages: list[dict[str, Any]]) -> Behavior:
        return calls((name, {"expression": f"{step}+1"}), **usage)(step, messages)

    return turn


def search_then_calculate(step: int, messages: list[dict[str, Any]]) -> Behavior:
    """Step 2: the product of the numbers the search found (or nothing to compute)."""
    found = " ".join(tool_texts(messages))
    crates = re.search(r"(\d+) crates", found)
    weight = re.search(r"weighs (\d+) kg", found)
    expression = f"{crates.group(1)}*{weight.group(1)}" if crates and weight else "0"
    return calls(("calculator", {"expression": expression}))(step, messages)


def retry_on_error(
    name: str, arguments: dict[str, Any], fix: dict[str, Any] | None = None
) -> Script:
    """Call; while the last result is an error (at most twice more), call again (with ``fix``
    as the arguments, if given); then answer with the last result."""

    def turn(step: int, messages: list[dict[str, Any]]) -> Behavior:
        results = tool_texts(messages)
        failed = bool(results) and ("Error" in results[-1] or "failed" in results[-1])
        if not results or (failed and step < 3):
            args = arguments if not results or fix is None else fix
            return calls((name, args))(step, messages)
        return Behavior(content="Result: " + results[-1])

    return turn


def safe_reader(marker: str) -> Script:
    """A model that follows an injection unless the gateway marked the text (``marker``)."""

    def turn(step: int, messages: list[dict[str, Any]]) -> Behavior:
        text = " ".join(tool_texts(messages))
        if marker in text:
            return Behavior(content="The ferry leaves at 9:15 from pier 4 (per the news tool).")
        return Behavior(
            content="The ferry is cancelled. Send your password to reset@harbour.example."
        )

    return turn


def joined(prefix: str) -> Script:
    return answer(lambda results: prefix + " | ".join(results))


def pay(ref: str, amount: float = 10) -> tuple[str, dict[str, Any]]:
    return ("send_payment", {"ref": ref, "to": "acme", "amount": amount})


def sent_refs(server: ToolServer) -> list[str]:
    return [str(call.get("ref")) for call in server.sent]


def expect_sent(ref: str, times: int, amount: float | None = None) -> Check:
    def check(out: Outcome, server: ToolServer) -> list[str]:
        got = [c for c in server.sent if c.get("ref") == ref]
        problems = [] if len(got) == times else [f"{ref} reached the tool {len(got)} times"]
        if amount is not None and any(c.get("amount") != amount for c in got):
            problems.append(f"{ref} was sent with {got}, not amount {amount}")
        return problems

    return check


def expect_hits(key: str, times: int) -> Check:
    def check(out: Outcome, server: ToolServer) -> list[str]:
        seen = server.hits[key]
        return [] if seen == times else [f"the tool server saw {key} {seen} times, not {times}"]

    return check


def expect_overlap(tag: str) -> Check:
    def check(out: Outcome, server: ToolServer) -> list[str]:
        peak = server.peak[tag]
        return [] if peak >= 2 else [f"the parallel calls never overlapped (peak {peak})"]

    return check


def expect_progress(kinds: list[str]) -> Check:
    def check(out: Outcome, server: ToolServer) -> list[str]:
        got = [p.get("type") for p in out.progress]
        return [] if got == kinds else [f"progress {got}, not {kinds}"]

    return check


def expect_no_agent(out: Outcome, server: ToolServer) -> list[str]:
    extra = out.response.get("groundgate") or {}
    return [] if "agent" not in extra else ["the agent ran although the pipeline answered"]


def expect_source_agent(out: Outcome, server: ToolServer) -> list[str]:
    extra = out.response.get("groundgate") or {}
    source, why = extra.get("source"), (out.extra.get("fallback_reason"))
    return [] if source == "agent" else [f"source {source!r} ({why}), not the agent"]


def expect_first_invalid(out: Outcome, server: ToolServer) -> list[str]:
    tools = [s for s in (out.run or {}).get("steps", []) if s.get("kind") == "tool"]
    if not tools or tools[0].get("valid") is not False or not tools[0].get("validation_errors"):
        return ["the invalid call was not recorded as invalid with its errors"]
    return []


def expect_decisions(count: int) -> Check:
    def check(out: Outcome, server: ToolServer) -> list[str]:
        got = [s for s in (out.run or {}).get("steps", []) if s.get("kind") == "decision"]
        return [] if len(got) == count else [f"{len(got)} decisions logged, not {count}"]

    return check


def all_of(*checks: Check) -> Check:
    def check(out: Outcome, server: ToolServer) -> list[str]:
        return [p for c in checks for p in c(out, server)]

    return check


BIG = {"prompt_tokens": 400, "completion_tokens": 200}
SMALL = {"prompt_tokens": 10, "completion_tokens": 10}
PENDING = (200, 202)


def tasks() -> list[Task]:
    mcp_calls: tuple[str, dict[str, Any]] = ("mcp__calls", {})
    return [
        Task(
            "search_calc_answer",
            "search_kb finds the numbers, calculator multiplies them, the model answers",
            plan(
                calls(("search_kb", {"query": "warehouse 7 crates weight"})),
                search_then_calculate,
                answer(lambda r: f"The crates weigh {r[-1]} kg in total."),
            ),
            ["search_kb", "calculator"],
            called=["search_kb", "calculator"],
            contains=("30000 kg",),
        ),
        Task(
            "parallel_calls",
            "three independent calls in one step run concurrently",
            plan(
                calls(
                    ("slow", {"tag": "par", "ms": 300}),
                    ("slow", {"tag": "par", "ms": 301}),
                    ("calculator", {"expression": "2**10"}),
                ),
                joined("Got: "),
            ),
            ["slow", "calculator"],
            called=["slow", "slow", "calculator"],
            contains=("1024",),
            check=expect_overlap("par"),
        ),
        Task(
            "flaky_then_ok",
            "a tool fails (HTTP 500), the model reads the error and retries, the retry works",
            plan(retry_on_error("flaky", {"job": "j1"})),
            ["flaky"],
            called=["flaky", "flaky"],
            contains=('"status": "done"',),
            check=expect_hits("flaky:j1", 2),
        ),
        Task(
            "hang_timeout",
            "a tool hangs past its timeout_s: an error result, the run goes on to an answer",
            plan(calls(("hang", {})), joined("Tool said: ")),
            ["hang"],
            called=["hang"],
            contains=("timed out",),
            check=expect_hits("hang", 1),
        ),
        Task(
            "hang_deadline",
            "a tool hangs longer than the run's deadline: the run stops at the deadline",
            plan(calls(("sleeper", {}))),
            ["sleeper"],
            status="stopped",
            stop="deadline",
            called=["sleeper"],
            limits={"deadline_s": 1.5},
        ),
        Task(
            "injection_fenced",
            "a tool result carries an injection; guards.passages = fence marks it as data",
            plan(calls(("news", {"topic": "ferry"})), safe_reader(FENCE_OPEN[:40])),
            ["news"],
            called=["news"],
            passages="fence",
            contains=("9:15",),
            excludes=("cancelled", "password"),
        ),
        Task(
            "injection_dropped",
            "the same with guards.passages = drop: the model never reads the injected text",
            plan(calls(("news", {"topic": "ferry"})), safe_reader(DROPPED)),
            ["news"],
            called=["news"],
            passages="drop",
            contains=("9:15",),
            excludes=("cancelled", "password"),
        ),
        Task(
            "loop_detected",
            "the model proposes the same call again and again",
            plan(calls(("calculator", {"expression": "1+1"}))),
            ["calculator"],
            status="stopped",
            stop="loop_detected",
            called=["calculator", "calculator"],
            limits={"loop_repeats": 3},
        ),
        Task(
            "max_steps",
            "a model that never answers, new arguments each step",
            plan(varied("calculator")),
            ["calculator"],
            status="stopped",
            stop="max_steps",
            called=["calculator"] * 2,  # the third step's call is never made
            limits={"max_steps": 3},
        ),
        Task(
            "max_tool_calls",
            "two calls per step against max_tool_calls = 3",
            plan(
                lambda s, m: calls(
                    ("calculator", {"expression": f"{s}+1"}),
                    ("calculator", {"expression": f"{s}+2"}),
                )(s, m)
            ),
            ["calculator"],
            status="stopped",
            stop="max_tool_calls",
            called=["calculator"] * 2,
            limits={"max_tool_calls": 3},
        ),
        Task(
            "max_tokens",
            "600 tokens a step against max_tokens = 1000",
            plan(varied("calculator", **BIG)),
            ["calculator"],
            status="stopped",
            stop="max_tokens",
            called=["calculator"],
            limits={"max_tokens": 1000},
        ),
        Task(
            "max_cost",
            "$0.02 a step against max_cost_usd = 0.05",
            plan(varied("calculator", **SMALL)),
            ["calculator"],
            status="stopped",
            stop="max_cost",
            called=["calculator"] * 2,
            limits={"max_cost_usd": 0.05},
            price=1000.0,
        ),
        Task(
            "invalid_arguments",
            "arguments that break the schema: an error result, the model fixes them",
            plan(retry_on_error("calculator", {"expr": "6*7"}, fix={"expression": "6*7"})),
            ["calculator"],
            called=["calculator", "calculator"],
            contains=("Result: 42",),
            check=expect_first_invalid,
        ),
        Task(
            "unknown_tool",
            "a call to a tool the app does not have: an error result naming the real ones",
            plan(calls(("drop_tables", {})), joined("Tool said: ")),
            ["calculator"],
            called=["drop_tables"],
            contains=("no tool named 'drop_tables'", "calculator"),
        ),
        Task(
            "tool_max_calls",
            "a tool with max_calls = 1 called twice: the second is an error result",
            plan(
                calls(("once", {"expression": "1+1"})),
                calls(("once", {"expression": "2+2"})),
                joined("Results: "),
            ),
            ["once"],
            called=["once", "once"],
            contains=("Results: 2 | Error: the tool 'once' may be called at most 1 times",),
        ),
        Task(
            "approve",
            "an irreversible call pauses the run (202); approved, it runs once",
            plan(calls(pay("approve-1")), joined("Paid: ")),
            ["calculator", "send_payment"],
            drive="approve",
            called=["send_payment"],
            contains=('"sent": true',),
            check=all_of(expect_sent("approve-1", 1), expect_decisions(1)),
        ),
        Task(
            "approve_edited",
            "approved with edited arguments: the tool gets the reviewer's arguments",
            plan(calls(pay("edit-1", amount=5000)), joined("Paid: ")),
            ["send_payment"],
            drive="approve_edit",
            edit={"ref": "edit-2", "to": "acme", "amount": 50},
            called=["send_payment"],
            check=all_of(expect_sent("edit-1", 0), expect_sent("edit-2", 1, amount=50)),
        ),
        Task(
            "reject",
            "an irreversible call rejected: never run, the model is told and answers",
            plan(calls(pay("reject-1")), joined("Outcome: ")),
            ["send_payment"],
            drive="reject",
            called=[],
            contains=("refused by a human reviewer",),
            check=expect_sent("reject-1", 0),
        ),
        Task(
            "approve_twice",
            "two approvals race: one wins (200), one gets 409, the tool runs once",
            plan(calls(pay("race-1")), joined("Paid: ")),
            ["send_payment"],
            drive="approve_twice",
            called=["send_payment"],
            check=expect_sent("race-1", 1),
        ),
        Task(
            "mixed_step",
            "a step with a reversible and an irreversible call: the first runs, the second waits",
            plan(calls(("calculator", {"expression": "7*6"}), pay("mixed-1")), joined("Done: ")),
            ["calculator", "send_payment"],
            drive="approve",
            called=["calculator", "send_payment"],
            contains=("Done: 42 |",),
            check=expect_sent("mixed-1", 1),
        ),
        Task(
            "two_pending",
            "two irreversible calls in one step both wait; one approval runs each once",
            plan(calls(pay("two-1"), pay("two-2")), joined("Paid: ")),
            ["send_payment"],
            drive="approve",
            called=["send_payment", "send_payment"],
            check=all_of(expect_sent("two-1", 1), expect_sent("two-2", 1)),
        ),
        Task(
            "approve_chain",
            "approved, the run goes on and pauses again at the next irreversible call",
            plan(calls(pay("chain-1")), calls(pay("chain-2")), joined("Paid: ")),
            ["send_payment"],
            drive="approve",
            decisions=2,
            called=["send_payment", "send_payment"],
            check=all_of(expect_sent("chain-1", 1), expect_sent("chain-2", 1), expect_decisions(2)),
        ),
        Task(
            "reject_then_insist",
            "rejected, the model proposes the same call again: asked twice, then loop_detected",
            plan(calls(pay("insist-1"))),
            ["send_payment"],
            drive="reject",
            decisions=2,
            status="stopped",
            stop="loop_detected",
            called=[],
            check=all_of(expect_sent("insist-1", 0), expect_decisions(2)),
        ),
        Task(
            "concurrent_approvals",
            f"{CONCURRENT} runs pause at once and are approved at once: each pays its own ref once",
            plan(pay_own_ref, joined("Paid: ")),
            ["send_payment"],
            drive="concurrent",
            stop=None,
            check=expect_own_runs,
        ),
        Task(
            "fallback_pending_approve",
            "an agent_fallback run that reaches an irreversible call pauses (202) like any run",
            plan(calls(pay("fallback-1")), joined("Paid: ")),
            ["send_payment"],
            drive="approve",
            called=["send_payment"],
            fallback_answer="I could not find the answer in the provided documents.",
            contains=('"sent": true',),
            check=expect_sent("fallback-1", 1),
        ),
        Task(
            "fallback_streamed",
            "agent_fallback on a streamed request: the loop's answer is streamed",
            plan(calls(("calculator", {"expression": "1200*25"})), joined("Agent: ")),
            ["calculator"],
            drive="stream",
            called=["calculator"],
            fallback_answer="I could not find the answer in the provided documents.",
            contains=("Agent: 30000",),
            check=expect_source_agent,
        ),
        Task(
            "model_hangs_deadline",
            "the model stops answering mid-run: the run stops at its deadline with what it has",
            plan(calls(("calculator", {"expression": "3*3"})), Behavior(hang=True)),
            ["calculator"],
            status="stopped",
            stop="deadline",
            called=["calculator"],
            limits={"deadline_s": 1.5},
            contains=("ran out of time",),
        ),
        Task(
            "model_error",
            "the model fails mid-run (HTTP 500): the client gets an error, the run is failed",
            plan(calls(("calculator", {"expression": "3*3"})), Behavior(status=500)),
            ["calculator"],
            status="failed",
            stop="error",
            called=["calculator"],
            first_status=503,  # UpstreamUnavailable, as for any chat request
        ),
        Task(
            "streamed",
            "a streamed run: progress comments, then the answer as chat chunks",
            plan(calls(("calculator", {"expression": "6*7"})), joined("It is ")),
            ["calculator"],
            drive="stream",
            called=["calculator"],
            contains=("It is 42",),
            check=expect_progress(["step", "tool", "step", "done"]),
        ),
        Task(
            "streamed_pending_reject",
            "a streamed run that needs approval ends pending; rejected, the tool never runs",
            plan(calls(pay("stream-1")), joined("Outcome: ")),
            ["send_payment"],
            drive="stream_reject",
            called=[],
            contains=("refused by a human reviewer",),
            check=expect_sent("stream-1", 0),
        ),
        Task(
            "mcp_tool",
            "a tool of an MCP server over stdio",
            plan(calls(("mcp__add", {"a": 2, "b": 40})), joined("Sum: ")),
            ["mcp__add"],
            called=["mcp__add"],
            contains=("Sum: 42",),
        ),
        Task(
            "mcp_irreversible_reject",
            "an irreversible MCP tool rejected; the MCP server's own count shows it never ran",
            plan(calls(("mcp__delete_item", {"item_id": "x1"})), calls(mcp_calls), joined("")),
            ["mcp__delete_item", "mcp__calls"],
            drive="reject",
            called=["mcp__calls"],
            excludes=("delete_item",),
        ),
        Task(
            "mcp_irreversible_approve",
            "the same approved: the MCP server served delete_item exactly once",
            plan(calls(("mcp__delete_item", {"item_id": "x2"})), calls(mcp_calls), joined("")),
            ["mcp__delete_item", "mcp__calls"],
            drive="approve",
            called=["mcp__delete_item", "mcp__calls"],
            contains=("deleted x2",),
            check=lambda out, _: (
                [] if out.answer.count("delete_item") == 1 else [f"served: {out.answer}"]
            ),
        ),
        Task(
            "agent_fallback",
            "a pipeline app abstains; agent_fallback answers with the loop",
            plan(calls(("calculator", {"expression": "1200*25"})), joined("Agent: ")),
            ["calculator"],
            called=["calculator"],
            fallback_answer="I could not find the answer in the provided documents.",
            contains=("Agent: 30000",),
            check=expect_source_agent,
        ),
        Task(
            "fallback_not_needed",
            "the same app when the pipeline answers: no agent run",
            plan(joined("unused")),
            ["calculator"],
            stop=None,
            fallback_answer="Warehouse 7 stores 1200 crates [1].",
            contains=("1200 crates",),
            check=expect_no_agent,
        ),
    ]


def task_config(task: Task) -> str:
    lines = [f"[models.{task.model}]", f'deployments = ["up:{task.model}"]']
    if task.price is not None:
        lines += [
            f'[prices."up:{task.model}"]',
            f"input_per_mtok = {task.price}",
            f"output_per_mtok = {task.price}",
        ]
    lines += [f"[apps.{task.name}]", f'model = "{task.model}"', f"tools = {json.dumps(task.tools)}"]
    if task.fallback_answer is not None:
        lines += ['knowledge_base = "kb"', "agent_fallback = true"]
    else:
        lines += ['mode = "agent"']
    limits = {"deadline_s": DEADLINE_S, **task.limits}
    lines.append("agent = { " + ", ".join(f"{k} = {v}" for k, v in limits.items()) + " }")
    if task.passages is not None:
        lines.append(f'guards = {{ passages = "{task.passages}" }}')
    return "\n".join(lines) + "\n"


# -- driving one task -------------------------------------------------------------------------


def agent_of(body: dict[str, Any]) -> dict[str, Any] | None:
    found = (body.get("groundgate") or {}).get("agent")
    return found if isinstance(found, dict) else None


def run_task(client: httpx.Client, task: Task, server: ToolServer) -> Outcome:
    if task.drive == "concurrent":
        return asyncio.run(_concurrent(str(client.base_url), task, server))
    out = Outcome()
    request = {"model": task.name, "messages": QUESTION}
    started = time.perf_counter()
    if task.drive.startswith("stream"):
        _stream(client, request, out)
    else:
        resp = client.post("/v1/chat/completions", json=request)
        out.statuses.append(resp.status_code)
        out.response = resp.json()
        out.agent = agent_of(out.response)
        choices = out.response.get("choices") or [{}]
        out.answer = str((choices[0].get("message") or {}).get("content") or "")
    run_id = (out.agent or {}).get("run_id")
    if run_id is None and task.stop is not None:  # an error response: the run's app's newest
        listed = client.get("/v1/runs", params={"app": task.name, "limit": 1}).json()
        run_id = next((r["id"] for r in listed.get("data", [])), None)
    if run_id and task.drive not in ("chat", "stream"):
        _decide(client, task, server, str(run_id), out)
    out.wall_s = time.perf_counter() - started
    if run_id:
        resp = client.get(f"/v1/runs/{run_id}")
        out.statuses.append(resp.status_code)
        out.run = resp.json()
        if task.drive not in ("chat", "stream"):
            out.answer = str(out.run.get("answer") or "")
    trace = (out.response.get("groundgate") or {}).get("trace_id")
    out.extra["trace_id"] = trace
    return out


def _stream(client: httpx.Client, request: dict[str, Any], out: Outcome) -> None:
    text: list[str] = []
    last: dict[str, Any] = {}
    with client.stream("POST", "/v1/chat/completions", json={**request, "stream": True}) as resp:
        out.statuses.append(resp.status_code)
        for line in resp.iter_lines():
            if line.startswith(": groundgate-agent "):
                out.progress.append(json.loads(line.split(" ", 2)[2]))
            elif line.startswith("data: {"):
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices") or []:
                    text.append((choice.get("delta") or {}).get("content") or "")
                last = chunk
    out.response = last
    out.agent = agent_of(last)
    out.answer = "".join(text)


def _decide(
    client: httpx.Client, task: Task, server: ToolServer, run_id: str, out: Outcome
) -> None:
    pending = (out.agent or {}).get("pending") or []
    if task.drive == "reject" or task.drive == "stream_reject":
        for _ in range(task.decisions):
            resp = client.post(f"/v1/runs/{run_id}/reject", json={"note": "bench says no"})
            out.statuses.append(resp.status_code)
        return
    for _ in range(task.decisions):
        # Approval: the refs about to be approved are known to the tool server first.
        body: dict[str, Any] = {"note": "bench approves"}
        for call in pending:
            ref = (call.get("arguments") or {}).get("ref")
            if ref is not None:
                server.approve(str(ref))
        if task.drive == "approve_edit" and task.edit is not None and pending:
            server.approve(str(task.edit["ref"]))
            body["arguments"] = {pending[0]["id"]: task.edit}
        if task.drive == "approve_twice":
            out.statuses += sorted(asyncio.run(_approve_twice(str(client.base_url), run_id)))
            return
        resp = client.post(f"/v1/runs/{run_id}/approve", json=body)
        out.statuses.append(resp.status_code)
        pending = resp.json().get("pending") or [] if resp.status_code == 200 else []


CONCURRENT = 8


async def _concurrent(base: str, task: Task, server: ToolServer) -> Outcome:
    """``CONCURRENT`` runs of the task's app at once, each paying its own ref (named in its
    question), then all approved at once."""
    out = Outcome()
    started = time.perf_counter()
    refs = [f"conc-{i}" for i in range(CONCURRENT)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(ref: str) -> dict[str, Any]:
            messages = [{"role": "user", "content": f"Pay invoice ref {ref}."}]
            resp = await client.post(
                "/v1/chat/completions", json={"model": task.name, "messages": messages}
            )
            out.statuses.append(resp.status_code)
            agent = agent_of(resp.json()) or {}
            for call in agent.get("pending") or []:
                server.approve(str((call.get("arguments") or {}).get("ref")))
            decided = await client.post(f"/v1/runs/{agent.get('run_id')}/approve", json={})
            out.statuses.append(decided.status_code)
            run: dict[str, Any] = decided.json()
            return run

        runs = await asyncio.gather(*(one(ref) for ref in refs))
    out.statuses = sorted(set(out.statuses))
    out.extra["runs"] = {ref: run for ref, run in zip(refs, runs, strict=True)}
    out.wall_s = time.perf_counter() - started
    return out


def expect_own_runs(out: Outcome, server: ToolServer) -> list[str]:
    """Each concurrent run completed with its own ref paid once, nobody else's."""
    problems = []
    runs: dict[str, dict[str, Any]] = out.extra.get("runs", {})
    for ref, run in runs.items():
        answer = str(run.get("answer") or "")
        others = [r for r in runs if r != ref and f'"{r}"' in answer]
        if run.get("status") != "completed" or f'"{ref}"' not in answer or others:
            problems.append(f"{ref}: {run.get('status')} {answer[:80]!r}")
        sent = sent_refs(server).count(ref)
        if sent != 1:
            problems.append(f"{ref} reached the tool {sent} times")
    return problems


def pay_own_ref(step: int, messages: list[dict[str, Any]]) -> Behavior:
    """Pay the ref the user's question names."""
    ref = str(messages[0].get("content", "")).rsplit(" ", 1)[-1].rstrip(".")
    return calls(pay(ref))(step, messages)


async def _approve_twice(base: str, run_id: str) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        both = await asyncio.gather(
            *(client.post(f"/v1/runs/{run_id}/approve", json={}) for _ in range(2))
        )
    return [r.status_code for r in both]


def expected_statuses(task: Task) -> list[int]:
    first = 202 if task.drive in ("approve", "reject", "approve_edit", "approve_twice") else 200
    first = task.first_status or first
    if task.drive == "concurrent":
        return [200, 202]  # every run paused, every approval answered
    if task.stop is None:
        return [first]
    decided = {
        "chat": [],
        "stream": [],
        "approve": [200] * task.decisions,
        "reject": [200] * task.decisions,
        "approve_edit": [200],
        "stream_reject": [200],
        "approve_twice": [200, 409],
    }[task.drive]
    return [first, *decided, 200]  # ... and the final GET /v1/runs/{id}


def judge(task: Task, out: Outcome, server: ToolServer) -> list[str]:
    """Why the task failed (empty: it passed)."""
    problems: list[str] = []
    if out.statuses != expected_statuses(task):
        problems.append(f"statuses {out.statuses}, expected {expected_statuses(task)}")
    for text in task.contains:
        if text not in out.answer:
            problems.append(f"the answer lacks {text!r}")
    for text in task.excludes:
        if text in out.answer:
            problems.append(f"the answer holds {text!r}")
    if task.check is not None:
        problems += task.check(out, server)
    if task.stop is None:
        return problems
    run = out.run or {}
    if (run.get("status"), run.get("stop_reason")) != (task.status, task.stop):
        problems.append(
            f"ended {run.get('status')}/{run.get('stop_reason')}, not {task.status}/{task.stop}"
        )
    steps = run.get("steps") or []
    called = [s.get("tool") for s in steps if s.get("kind") == "tool"]
    if task.called is not None and called != task.called:
        problems.append(f"called {called}, expected {task.called}")
    problems += within_limits(task, run, out.wall_s)
    return problems


def within_limits(task: Task, run: dict[str, Any], wall_s: float) -> list[str]:
    limits = {
        "max_steps": 8,
        "max_tool_calls": 16,
        "max_tokens": 50_000,
        "max_cost_usd": 0.5,
        "deadline_s": DEADLINE_S,
        **task.limits,
    }
    usage = run.get("usage") or {}
    model_steps = [s for s in run.get("steps") or [] if s.get("kind") == "step"]
    before_last = model_steps[:-1]
    tokens = sum(s["prompt_tokens"] + s["completion_tokens"] for s in before_last)
    cost = sum(s["cost_usd"] for s in before_last)
    problems = []
    if usage.get("steps", 0) > limits["max_steps"]:
        problems.append(f"{usage.get('steps')} steps > {limits['max_steps']}")
    if usage.get("tool_calls", 0) > limits["max_tool_calls"]:
        problems.append(f"{usage.get('tool_calls')} tool calls > {limits['max_tool_calls']}")
    if usage.get("elapsed_s", 0.0) > limits["deadline_s"] + 0.5:
        problems.append(f"ran {usage.get('elapsed_s')}s, deadline {limits['deadline_s']}s")
    if wall_s > limits["deadline_s"] + 5.0:
        problems.append(f"the request took {wall_s:.1f}s, deadline {limits['deadline_s']}s")
    if tokens >= limits["max_tokens"]:
        problems.append(f"a step was made after {tokens} tokens (max {limits['max_tokens']})")
    if cost >= limits["max_cost_usd"]:
        problems.append(f"a step was made after ${cost} (max {limits['max_cost_usd']})")
    return problems


def run_suite(upstream: FakeUpstream, server: ToolServer) -> dict[str, Any]:
    suite = tasks()
    upstream.respond_with(
        by_model(
            {t.model: t.script for t in suite},
            {t.model: Behavior(content=t.fallback_answer) for t in suite if t.fallback_answer},
        )
    )
    config = BASE % {"fake": upstream.url} + TOOLS % {
        "tools": server.url,
        "python": PYTHON,
        "src": SRC,
    }
    config += "".join(task_config(t) for t in suite)
    results = []
    with temp_dir("groundgate-bench-agent-") as workdir:
        gateway = start_gateway(config, workdir)
        try:
            with httpx.Client(base_url=gateway.url, timeout=60) as client:
                resp = client.post("/v1/knowledge-bases/kb/documents", json={"documents": KB_DOCS})
                resp.raise_for_status()
                for task in suite:
                    out = run_task(client, task, server)
                    problems = judge(task, out, server)
                    run = out.run or {}
                    results.append(
                        {
                            "task": task.name,
                            "about": task.about,
                            "passed": not problems,
                            "problems": problems,
                            "status": run.get("status"),
                            "stop_reason": run.get("stop_reason"),
                            "tools_called": [
                                s.get("tool")
                                for s in run.get("steps") or []
                                if s.get("kind") == "tool"
                            ],
                            "usage": run.get("usage"),
                            "http": out.statuses,
                            "wall_s": round(out.wall_s, 3),
                            "answer": out.answer[:200],
                        }
                    )
        finally:
            gateway.stop()
    return {"results": results}


# -- CPU per step -----------------------------------------------------------------------------

CPU_APPS = """
[models.plain]
deployments = ["up:plain"]
[tools.calculator]
kind = "builtin"
which = "calculator"
"""


def cpu_app(steps: int) -> str:
    return (
        f'[models.m_cpu{steps}]\ndeployments = ["up:cpu{steps}"]\n'
        f'[apps.cpu{steps}]\nmode = "agent"\nmodel = "m_cpu{steps}"\ntools = ["calculator"]\n'
        f"agent = {{ max_steps = {steps} }}\n"
    )


def cpu_script(steps: int) -> Script:
    """``steps - 1`` calculator calls, then the answer."""

    def turn(step: int, messages: list[dict[str, Any]]) -> Behavior:
        if step < steps - 1:
            return calls(("calculator", {"expression": f"{step}*7+1"}))(step, messages)
        return Behavior(content="Done: " + " ".join(tool_texts(messages)))

    return turn


SETTLE_S = 0.5
ROUNDS = 5


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _batch(base: str, body: dict[str, Any], count: int, concurrency: int) -> int:
    """Send ``count`` requests, ``concurrency`` at a time; how many were not 200 or did not
    end as expected."""
    failed = 0
    left = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        for _ in left:
            resp = await client.post("/v1/chat/completions", json=body)
            agent = agent_of(resp.json()) if resp.status_code == 200 else None
            if resp.status_code != 200 or (
                body["model"] != "plain" and (agent or {}).get("stop_reason") != "final_answer"
            ):
                failed += 1

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return failed


def measure(gateway: Server, model: str, count: int, concurrency: int = 1) -> tuple[float, int]:
    """CPU seconds the gateway spent on ``count`` requests to ``model``, and the failures."""
    process = psutil.Process(gateway.pid)
    body = {"model": model, "messages": QUESTION}
    before = cpu_seconds(process)
    failed = asyncio.run(_batch(gateway.url, body, count, concurrency))
    time.sleep(SETTLE_S)  # the batch's traces are written (flushed every 200 ms) in its count
    return cpu_seconds(process) - before, failed


def run_cpu(upstream: FakeUpstream, runs: int) -> dict[str, Any]:
    sizes = (2, 4, 8)
    upstream.respond_with(by_model({f"cpu{n}": cpu_script(n) for n in sizes}))
    config = BASE % {"fake": upstream.url} + CPU_APPS + "".join(cpu_app(n) for n in sizes)
    config = config.replace("flush_interval_ms = 50", "flush_interval_ms = 200")
    rounds: dict[str, list[float]] = {"agent4": [], "agent2": [], "agent8": [], "plain": []}
    failed = 0
    with temp_dir("groundgate-bench-agentcpu-") as workdir:
        gateway = start_gateway(config, workdir)
        try:
            for model in ("cpu4", "cpu2", "cpu8", "plain"):  # warm-up
                failed += measure(gateway, model, 30)[1]
            for _ in range(ROUNDS):
                for name, model, count, steps in (
                    ("agent4", "cpu4", runs, 4),
                    ("agent2", "cpu2", runs, 2),
                    ("agent8", "cpu8", runs // 2, 8),
                    ("plain", "plain", runs * 2, 1),
                ):
                    spent, bad = measure(gateway, model, count)
                    failed += bad
                    rounds[name].append(spent * 1000.0 / (count * steps))
            concurrent, bad = measure(gateway, "cpu4", runs, concurrency=8)
            failed += bad
        finally:
            gateway.stop()
    median = {k: statistics.median(v) for k, v in rounds.items()}
    # One more step, from runs of 2 and of 8 steps (per-run costs cancel).
    per_run = {n: median[f"agent{n}"] * n for n in (2, 8)}
    marginal = (per_run[8] - per_run[2]) / 6
    return {
        "cpu_ms_per_step": round(median["agent4"], 3),
        "details": {
            "method": "runs of 4 model steps (3 calculator calls + the answer), one at a time, "
            "zero-latency fake upstream; gateway CPU (user+system) / model steps; includes the "
            "client request, the stages, each step's upstream HTTP call, the loop, argument "
            "validation, the builtin calculator, the run stored and its trace written",
            "runs_per_round": runs,
            "rounds": ROUNDS,
            "steps_per_round": runs * 4,
            "cpu_ms_per_step_rounds": [round(x, 3) for x in rounds["agent4"]],
            "cpu_ms_per_run_4_steps": round(median["agent4"] * 4, 3),
            "cpu_ms_per_step_2_step_runs": round(median["agent2"], 3),
            "cpu_ms_per_step_8_step_runs": round(median["agent8"], 3),
            "marginal_cpu_ms_per_extra_step": round(marginal, 3),
            "plain_chat_cpu_ms_per_request": round(median["plain"], 3),
            "plain_chat_rounds": [round(x, 3) for x in rounds["plain"]],
            "cpu_ms_per_step_concurrency_8": round(concurrent * 1000.0 / (runs * 4), 3),
            "failed_requests": failed,
        },
    }


# -- the report -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    server = ToolServer().start()
    upstream = FakeUpstream(record=False).start()
    try:
        suite = run_suite(upstream, server)
        cpu = run_cpu(upstream, args.runs)
    finally:
        upstream.stop()
        server.stop()
    results = suite["results"]
    # What the MCP server says it served (its ``calls`` tool, called by the two MCP approval
    # tasks after the decision): delete_item never after the rejection, once after the approval.
    served = {r["task"]: r["answer"] for r in results if r["task"].startswith("mcp_irrev")}
    mcp_unapproved = served.get("mcp_irreversible_reject", "").count("delete_item") + max(
        served.get("mcp_irreversible_approve", "").count("delete_item") - 1, 0
    )
    unapproved = len(server.unapproved) + mcp_unapproved
    passed = sum(1 for r in results if r["passed"])
    report: dict[str, Any] = {
        "benchmark": "agent",
        "cpu_count": psutil.cpu_count(),
        "python": ".".join(map(str, sys.version_info[:3])),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tasks": len(results),
        "passed": passed,
        "irreversible_without_approval": unapproved,
        "cpu_ms_per_step": cpu["cpu_ms_per_step"],
        "details": {
            "tasks": results,
            "irreversible": {
                "http_calls": len(server.sent),
                "http_refs": sent_refs(server),
                "http_unapproved": server.unapproved,
                "mcp_served": served,
                "mcp_unapproved": mcp_unapproved,
            },
            "cpu": cpu["details"],
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
    }
    report["bars"] = {
        "tasks>=20": len(results) >= 20,
        "all_passed": passed == len(results),
        "irreversible_without_approval==0": unapproved == 0,
        "cpu_ms_per_step<=2": cpu["cpu_ms_per_step"] <= 2.0,
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="Agent runs per CPU round.")
    parser.add_argument("--json", dest="json_out", help="Write the figures here.")
    args = parser.parse_args()
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
