"""Knowledge bases end to end: ingest over HTTP, ask, cite, update, delete."""

from __future__ import annotations

import httpx
import openai
import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess

HANDBOOK = [
    {
        "id": "vacation",
        "title": "Vacation policy",
        "metadata": {"team": "people"},
        "text": "Employees receive 28 days of paid vacation per year. Unused vacation days "
        "expire at the end of March of the following year.",
    },
    {
        "id": "expenses",
        "title": "Expense policy",
        "metadata": {"team": "finance"},
        "text": "Travel expenses are reimbursed within 14 days of submitting the receipts. "
        "Hotel costs are capped at 180 euros per night.",
    },
    {
        "id": "security",
        "title": "Security policy",
        "metadata": {"team": "it"},
        "text": "Laptops must use full-disk encryption. Passwords are rotated every 90 days "
        "and must have at least 14 characters.",
    },
]


def post_docs(gateway: GatewayProcess, kb: str, docs: list[dict[str, object]]) -> dict:  # type: ignore[type-arg]
    resp = httpx.post(
        f"{gateway.url}/v1/knowledge-bases/{kb}/documents", json={"documents": docs}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def ask(gateway: GatewayProcess, **body: object) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/ask", json=body, timeout=60)


@pytest.fixture(scope="module")
def handbook(gateway: GatewayProcess) -> str:
    result = post_docs(gateway, "handbook", HANDBOOK)
    assert {d["status"] for d in result["documents"]} <= {"added", "unchanged"}
    return "handbook"


def test_ask_returns_cited_answer(gateway: GatewayProcess, handbook: str) -> None:
    resp = ask(gateway, app="handbook", question="How many vacation days do employees get?")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "28 days" in body["answer"]
    assert body["source"] == "rag" and resp.headers["x-groundgate-source"] == "rag"
    assert body["abstained"] is False
    citation = body["citations"][0]
    assert citation["document_id"] == "vacation"
    assert citation["chunk_id"].startswith("vacation#")
    assert citation["title"] == "Vacation policy" and "28 days" in citation["snippet"]
    trace = httpx.get(f"{gateway.url}/v1/traces/{body['trace_id']}").json()
    names = [s["name"] for s in trace["spans"]]
    assert names == [
        "route",
        "cache_lookup",
        "rewrite",
        "retrieve",
        "prompt",
        "generate",
        "cite",
        "cache_write",
    ]
    assert trace["attrs"]["retrieval"]["passages"][0]["chunk_id"].startswith("vacation#")


def test_app_is_a_model_for_the_openai_sdk(gateway: GatewayProcess, handbook: str) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    assert "handbook" in {m.id for m in client.models.list()}
    reply = client.chat.completions.create(
        model="handbook", messages=[{"role": "user", "content": "What is the hotel cap?"}]
    )
    assert "180 euros" in (reply.choices[0].message.content or "")
    extra = (reply.model_extra or {})["groundgate"]
    assert extra["source"] == "rag" and extra["knowledge_base"] == "handbook"
    assert extra["citations"][0]["document_id"] == "expenses"
    chunks = list(
        client.chat.completions.create(
            model="handbook",
            stream=True,
            messages=[{"role": "user", "content": "How often are passwords rotated?"}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "90 days" in text
    tail = (chunks[-1].model_extra or {})["groundgate"]
    assert tail["citations"][0]["document_id"] == "security"


def test_app_with_remote_model_gets_numbered_sources(
    gateway: GatewayProcess, handbook: str, fake_upstream: FakeUpstream
) -> None:
    resp = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        timeout=30,
        json={
            "model": "handbook-gpt",
            "messages": [
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "How long do reimbursements take?"},
            ],
        },
    )
    assert resp.status_code == 200, resp.text
    sent = fake_upstream.requests()[-1].json
    system = sent["messages"][0]["content"]
    assert sent["messages"][0]["role"] == "system" and sent["model"] == "gpt-4o-mini"
    assert "[1] Expense policy" in system and "Additional instructions: Answer in French." in system
    assert system.index("Additional instructions") < system.index("Sources:")
    assert sent["messages"][1:] == [{"role": "user", "content": "How long do reimbursements take?"}]


def test_follow_up_is_rewritten(gateway: GatewayProcess, handbook: str) -> None:
    resp = ask(
        gateway,
        app="handbook",
        question="And what about the hotel?",
        history=[
            {"role": "user", "content": "How are travel expenses reimbursed?"},
            {"role": "assistant", "content": "Within 14 days [1]."},
        ],
    )
    body = resp.json()
    assert "travel" in body["query"] and "expenses" in body["query"]
    assert body["citations"][0]["document_id"] == "expenses"


def test_unanswerable_question_abstains(gateway: GatewayProcess, handbook: str) -> None:
    body = ask(
        gateway, app="handbook", question="What is the boiling point of liquid nitrogen?"
    ).json()
    assert body["abstained"] is True and body["citations"] == []


def test_reingest_update_and_delete(gateway: GatewayProcess) -> None:
    kb = "lifecycle"
    docs = [
        {"id": "plan", "text": "The basic plan costs 10 dollars per month."},
        {"id": "other", "text": "Support is available on weekdays from 9 to 5."},
    ]
    assert [d["status"] for d in post_docs(gateway, kb, docs)["documents"]] == ["added", "added"]
    assert [d["status"] for d in post_docs(gateway, kb, docs)["documents"]] == [
        "unchanged",
        "unchanged",
    ]
    changed = [{"id": "plan", "text": "The basic plan costs 12 dollars per month."}]
    assert post_docs(gateway, kb, changed)["documents"][0]["status"] == "updated"
    answer = ask(gateway, kb=kb, question="How much does the basic plan cost?").json()
    assert "12 dollars" in answer["answer"] and "10 dollars" not in answer["answer"]
    listed = httpx.get(f"{gateway.url}/v1/knowledge-bases/{kb}/documents").json()["data"]
    assert sorted(d["id"] for d in listed) == ["other", "plan"]
    assert httpx.delete(f"{gateway.url}/v1/knowledge-bases/{kb}/documents/plan").status_code == 200
    assert httpx.get(f"{gateway.url}/v1/knowledge-bases/{kb}/documents/plan").status_code == 404
    after = ask(gateway, kb=kb, question="How much does the basic plan cost?").json()
    assert all(c["document_id"] != "plan" for c in after["citations"])
    kbs = {k["name"]: k for k in httpx.get(f"{gateway.url}/v1/knowledge-bases").json()["data"]}
    assert kbs[kb]["documents"] == 1


def test_filters_restrict_retrieval(gateway: GatewayProcess, handbook: str) -> None:
    body = ask(
        gateway, app="handbook", question="How many days?", filters={"team": "finance"}
    ).json()
    assert {c["document_id"] for c in body["citations"]} <= {"expenses"}
    bad = ask(gateway, app="handbook", question="x", filters={"te'am": 1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "filters"


def test_multipart_upload_reports_the_bad_file(gateway: GatewayProcess) -> None:
    files = [
        (
            "files",
            ("guide.md", b"# Guide\n\n## Setup\n\nRun the installer twice.\n", "text/markdown"),
        ),
        ("files", ("notes.txt", b"The office closes at 6 pm on Fridays.", "text/plain")),
        ("files", ("broken.pdf", b"%PDF-1.7 this is not really a pdf", "application/pdf")),
        ("files", ("../../etc/evil.txt", b"Path tricks are ignored.", "text/plain")),
    ]
    resp = httpx.post(
        f"{gateway.url}/v1/knowledge-bases/uploads/documents", files=files, timeout=60
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert {d["id"]: d["status"] for d in body["documents"]} == {
        "guide.md": "added",
        "notes.txt": "added",
        "evil.txt": "added",
    }
    assert [f["source"] for f in body["failures"]] == ["broken.pdf"]
    answer = ask(gateway, kb="uploads", question="When does the office close on Fridays?")
    assert "6 pm" in answer.json()["answer"]


def upload(gateway: GatewayProcess, kb: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    """A multipart upload written by hand, so file names reach the server byte for byte (httpx
    percent-encodes control characters; a hostile client does not)."""
    boundary = "groundgate-test-boundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    )
    return httpx.post(
        f"{gateway.url}/v1/knowledge-bases/{kb}/documents",
        content=body + f"--{boundary}--\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )


@pytest.mark.parametrize(
    "bad_name",
    ["notes\x00.txt", "\x1b[31mred.md", "tab\there.txt", "x" * 252 + ".txt"],
    ids=["nul", "escape", "tab", "too-long"],
)
def test_a_bad_upload_name_is_a_400_and_nothing_is_ingested(
    gateway: GatewayProcess, bad_name: str
) -> None:
    # A NUL in a file name once reached the file system: a 500.
    resp = upload(gateway, "bad-names", [("fine.txt", b"Kept out too."), (bad_name, b"Hello.")])
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "files"
    assert httpx.get(f"{gateway.url}/v1/knowledge-bases/bad-names").status_code == 404


def test_two_uploads_with_one_name_are_a_400_and_nothing_is_ingested(
    gateway: GatewayProcess,
) -> None:
    # Stored under their base names, the second replaced the first without a word.
    files = [
        ("intro.txt", b"Welcome."),
        ("team-a/notes.md", b"Team A meets on Mondays."),
        ("team-b\\notes.md", b"Team B meets on Fridays."),
    ]
    resp = upload(gateway, "same-names", files)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "files"
    assert "'notes.md'" in resp.json()["error"]["message"]
    assert httpx.get(f"{gateway.url}/v1/knowledge-bases/same-names").status_code == 404


def test_records_sharing_an_id_across_uploaded_files_keep_the_first(
    gateway: GatewayProcess,
) -> None:
    files = [
        ("one.jsonl", b'{"id": "policy", "text": "Refunds take 14 days."}\n'),
        ("two.jsonl", b'{"id": "policy", "text": "Refunds take 90 days."}\n'),
    ]
    resp = upload(gateway, "shared-ids", files)
    assert resp.status_code == 200, resp.text
    assert [(d["id"], d["status"]) for d in resp.json()["documents"]] == [
        ("policy", "added"),
        ("policy", "failed"),
    ]
    assert "duplicate id" in resp.json()["documents"][1]["error"]
    doc = httpx.get(f"{gateway.url}/v1/knowledge-bases/shared-ids/documents/policy").json()
    assert doc["source"] == "one.jsonl"


@pytest.mark.parametrize("offset", [2**63, 10**30])
def test_document_offset_past_64_bits_is_an_empty_page(
    gateway: GatewayProcess, handbook: str, offset: int
) -> None:
    # Found by schemathesis: the offset went to SQLite as it was, which cannot bind it (500).
    resp = httpx.get(
        f"{gateway.url}/v1/knowledge-bases/{handbook}/documents", params={"offset": offset}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"object": "list", "data": []}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"question": "x", "kb": "no-such-kb"}, 404),
        ({"question": "x", "app": "no-such-app"}, 404),
        ({"question": "x"}, 400),
        ({"question": "", "kb": "handbook"}, 400),
        ({"question": "x", "kb": "bad name!"}, 400),
        ({"question": "x", "kb": "handbook", "top_k": 500}, 400),
    ],
)
def test_ask_errors(gateway: GatewayProcess, body: dict[str, object], status: int) -> None:
    resp = ask(gateway, **body)
    assert resp.status_code == status, resp.text
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
