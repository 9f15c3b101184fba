"""A run paused for approval survives the gateway: stopped, a new gateway on the same SQLite
file resumes it (approved through the API), and ``groundgate runs`` lists, approves and
rejects from the store with no gateway running at all. A run a stopped gateway left
``running`` is failed by the next gateway to start, once no replica can still be running it."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from groundgate.agents.reaper import ABANDONED_NOTE
from groundgate.store.runs import RunRecord
from groundgate.store.sqlite import SQLiteStore
from groundgate.testing.fake_upstream import FakeUpstream
from tests.agents.receiver import Receiver
from tests.agents.scripts import answer_from_tools, calls, plan
from tests.servers import GatewayProcess, KeyedGateway, start_gateway
from tests.store.test_runs_conformance import run

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
CONFIG = """
[auth]
mode = "required"
[store]
path = "{workdir}/gg.db"
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.m]
deployments = ["up:m"]
[tools.send_email]
kind = "http"
method = "POST"
url = "{recv}/send"
allow_private = true
irreversible = true
parameters = {{ type = "object", properties = {{ to = {{ type = "string" }} }}, required = ["to"] }}
[apps.mailer]
mode = "agent"
model = "m"
tools = ["send_email"]
"""
USER = [{"role": "user", "content": "Mail the report."}]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def _start(workdir: Path, fake: FakeUpstream, receiver: Receiver) -> GatewayProcess:
    config = CONFIG.format(workdir=workdir, fake=fake.url, recv=receiver.url)
    return start_gateway(config, workdir, env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY})


def _pause(gate: KeyedGateway, to: str) -> str:
    raw = gate.sdk("asker").chat.completions.with_raw_response.create(
        model="mailer", messages=[{"role": "user", "content": f"Mail the report to {to}."}]
    )
    assert raw.status_code == 202, raw.http_response.text
    run_id: str = raw.http_response.json()["groundgate"]["agent"]["run_id"]
    return run_id


def _email_to(step: int, messages: list[dict[str, Any]]) -> Any:
    to = str(messages[0]["content"]).removeprefix("Mail the report to ").rstrip(".")
    return calls(("send_email", {"to": to}))(step, messages)


def test_a_paused_run_resumes_after_a_restart_through_the_api_and_the_cli(
    fake_upstream: FakeUpstream, receiver: Receiver, tmp_path: Path
) -> None:
    fake_upstream.respond_with(plan(_email_to, answer_from_tools("Sent: ")))
    first = _start(tmp_path, fake_upstream, receiver)
    try:
        gate = KeyedGateway(first, ADMIN_KEY)
        gate.make_keys({"asker": ("acme", ["chat"]), "approver": ("acme", ["approve"])})
        by_api = _pause(gate, "api@example.com")
        by_cli = _pause(gate, "cli@example.com")
        rejected = _pause(gate, "no@example.com")
    finally:
        first.stop()
    assert receiver.sent == []

    second = _start(tmp_path, fake_upstream, receiver)
    try:
        gate = KeyedGateway(second, ADMIN_KEY, gate.keys)
        approved = gate.post("approver", f"/v1/runs/{by_api}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "completed"
        assert approved.json()["answer"] == 'Sent: {"sent": true}'
        # The list pages on its last id (the shape every paged route answers with).
        page = gate.get("approver", "/v1/runs", limit=2).json()
        ids = [r["id"] for r in page["data"]]
        assert page["has_more"] and (page["first_id"], page["last_id"]) == (ids[0], ids[-1])
        rest = gate.get("approver", "/v1/runs", limit=2, after=page["last_id"]).json()
        assert [r["id"] for r in rest["data"]] == [rest["first_id"]] and not rest["has_more"]
        assert {*ids, rest["last_id"]} == {by_api, by_cli, rejected}
    finally:
        second.stop()
    assert receiver.sent == [{"to": "api@example.com"}]

    # No gateway running: the CLI reads the store and resumes runs itself.
    pending = ("--status", "pending_approval")
    listed = second.cli("runs", "list", "--tenant", "acme", *pending, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in json.loads(listed.stdout)["data"]} == {by_cli, rejected}
    table = second.cli("runs", "list", "--tenant", "acme", *pending)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "run_" in line]
    assert len(rows) == 2 and all("pending_approval" in r and "send_email" in r for r in rows)

    done = second.cli("runs", "approve", by_cli, "--tenant", "acme", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["status"] == "completed" and view["decided_by"] == "cli"
    assert receiver.sent == [{"to": "api@example.com"}, {"to": "cli@example.com"}]

    # Without --json: where the run now stands on stderr, its answer alone on stdout.
    refused = second.cli("runs", "reject", rejected, "--tenant", "acme", "--note", "no")
    assert refused.returncode == 0, refused.stderr
    assert refused.stderr.startswith(f"Run {rejected} completed (")
    assert "refused by a human reviewer (no)" in refused.stdout
    assert len(receiver.sent) == 2

    again = second.cli("runs", "approve", by_cli, "--tenant", "acme", "--json")
    assert again.returncode == 1 and "not waiting for approval" in again.stdout
    shown = second.cli("runs", "show", by_cli, "--tenant", "acme")
    assert json.loads(shown.stdout)["steps"][-1]["kind"] == "step"
    elsewhere = second.cli("runs", "show", by_cli, "--tenant", "globex")
    assert elsewhere.returncode == 1
    error = json.loads(elsewhere.stdout)["error"]  # show speaks JSON, its errors too
    assert error["message"] == f"No run with id '{by_cli}' in tenant 'globex'."


def test_a_gateway_fails_the_runs_a_stopped_one_left_running(
    fake_upstream: FakeUpstream, receiver: Receiver, tmp_path: Path
) -> None:
    now = time.time()
    left = {  # as a gateway killed mid-run leaves them
        "abandoned": run(app="mailer", status="running", updated_at=now - 3600),
        "live": run(app="mailer", status="running", updated_at=now),  # on another replica
        # An app this gateway does not know: given a day, whatever its own deadline.
        "retired-app": run(app="retired", status="running", updated_at=now - 3600),
        "overdue": run(app="mailer", updated_at=now - 2 * 24 * 3600),  # waiting for approval
    }
    db = str(tmp_path / "gg.db")

    async def store_runs(write: dict[str, RunRecord]) -> dict[str, RunRecord | None]:
        store = SQLiteStore(db)
        await store.open()
        try:
            for record in write.values():
                await store.runs.add_run(record)
            return {n: await store.runs.get_run(r.tenant, r.id) for n, r in left.items()}
        finally:
            await store.close()

    asyncio.run(store_runs(left))
    _start(tmp_path, fake_upstream, receiver).stop()
    after = asyncio.run(store_runs({}))

    abandoned = after["abandoned"]
    assert abandoned is not None and abandoned.status == "failed"
    assert (abandoned.stop_reason, abandoned.note) == ("error", ABANDONED_NOTE)
    assert abandoned.messages == left["abandoned"].messages  # the rest as it was
    assert {n: r.status for n, r in after.items() if r is not None} == {
        "abandoned": "failed",
        "live": "running",
        "retired-app": "running",
        "overdue": "expired",
    }
