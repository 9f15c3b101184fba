"""Two gateway processes over one PostgreSQL: stateless replicas share documents and traces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import GatewayProcess, start_gateway
from tests.store.pg_server import PgServer

CONFIG = """
[store]
type = "postgres"
[traces]
flush_interval_ms = 20
[apps.handbook]
knowledge_base = "replicated"
model = "local"
"""


@pytest.fixture
def replicas(pg_server: PgServer, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    import psycopg

    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS gg_e2e CASCADE")
        conn.execute("CREATE SCHEMA gg_e2e")
    env = {"GROUNDGATE_PG_DSN": pg_server.dsn(schema="gg_e2e")}
    gateways: list[GatewayProcess] = []
    try:
        for name in ("a", "b"):
            gateways.append(start_gateway(CONFIG, tmp_path / name, env=env))
        yield gateways
    finally:
        for gateway in gateways:
            gateway.stop()
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS gg_e2e CASCADE")


def test_replicas_share_documents_and_traces(replicas: list[GatewayProcess]) -> None:
    a, b = replicas
    ready = httpx.get(f"{a.url}/readyz").json()
    assert ready["store"] == {"ready": True, "type": "postgres"}
    docs = [
        {
            "id": "pto",
            "title": "Time off",
            "text": "Employees receive 28 days of paid vacation per year.",
        },
        {"id": "wifi", "title": "Office", "text": "The guest wifi password changes every Monday."},
    ]
    resp = httpx.post(
        f"{a.url}/v1/knowledge-bases/replicated/documents", json={"documents": docs}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    answer = httpx.post(
        f"{b.url}/v1/ask",
        timeout=60,
        json={"app": "handbook", "question": "How many vacation days do employees get?"},
    ).json()
    assert "28 days" in answer["answer"]
    assert answer["citations"][0]["document_id"] == "pto"
    # The trace written by replica b is readable through replica a.
    for _ in range(50):
        trace = httpx.get(f"{a.url}/v1/traces/{answer['trace_id']}")
        if trace.status_code == 200:
            break
        time.sleep(0.1)
    assert trace.status_code == 200 and trace.json()["endpoint"] == "ask"
    # A delete through one replica is seen by the other at once.
    assert httpx.delete(f"{b.url}/v1/knowledge-bases/replicated/documents/pto").status_code == 200
    after = httpx.post(
        f"{a.url}/v1/ask",
        timeout=60,
        json={"app": "handbook", "question": "How many vacation days do employees get?"},
    ).json()
    assert all(c["document_id"] != "pto" for c in after["citations"])
