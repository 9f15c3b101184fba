"""Fallback chains over real providers: the fake upstream and a port nobody listens on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from groundgate.config import load_settings
from groundgate.errors import ProviderError, UpstreamRejected
from groundgate.observe.trace import Trace
from groundgate.providers.base import ChatCall, ManagedProvider
from groundgate.providers.registry import build_provider
from groundgate.reliability import fallback
from groundgate.reliability.fallback import DeadlineExceeded
from groundgate.routing.catalog import Catalog
from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import free_port

CALL = ChatCall(messages=[{"role": "user", "content": "hi"}])


@pytest.fixture
async def catalog(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Catalog]:
    path = tmp_path_factory.mktemp("fallback") / "g.toml"
    path.write_text(f"""
[providers.up]
type = "openai"
base_url = "{fake_upstream.openai_base_url}"
timeout_s = 2
[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
[models.chain]
deployments = ["dead:a", "up:b", "up:c"]
[models.single]
deployments = ["up:b"]
""")
    settings = load_settings(path)
    providers: dict[str, ManagedProvider] = {
        name: build_provider(name, cfg, settings)
        for name, cfg in settings.providers.items()
        if name != "local"
    }
    for prov in providers.values():
        await prov.start()
    yield Catalog(
        settings.model_copy(
            update={
                "embedders": {},
                "models": {k: v for k, v in settings.models.items() if k != "local"},
            }
        ),
        providers,
    )
    for prov in providers.values():
        await prov.aclose()


def trace() -> Trace:
    return Trace(id="t", tenant="default", endpoint="chat.completions", model="chain")


async def test_chain_skips_dead_deployment(catalog: Catalog) -> None:
    t = trace()
    dep, completion = await fallback.complete(
        catalog.get("chain", "chat"), CALL, time.monotonic() + 5, t
    )
    assert dep.id == "up:b"
    assert completion.choices[0]["message"]["content"] == "echo: hi"
    assert [(a.deployment, a.status) for a in t.attempts] == [("dead:a", "error"), ("up:b", "ok")]
    assert t.attempts[0].transient is True


async def test_transient_failure_moves_on(catalog: Catalog, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behavior(status=502))
    t = trace()
    dep, _ = await fallback.complete(catalog.get("chain", "chat"), CALL, time.monotonic() + 5, t)
    assert dep.id == "up:c"
    assert [a.status for a in t.attempts] == ["error", "error", "ok"]
    assert t.attempts[1].upstream_status == 502


async def test_rejected_request_is_not_tried_elsewhere(
    catalog: Catalog, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(status=400, error_message="bad tool schema"))
    t = trace()
    with pytest.raises(UpstreamRejected) as info:
        await fallback.complete(catalog.get("chain", "chat"), CALL, time.monotonic() + 5, t)
    assert "bad tool schema" in info.value.message
    assert len(t.attempts) == 2  # dead, then the rejection; "up:c" never called
    assert len(fake_upstream.requests()) == 1


async def test_all_failed_lists_every_deployment(
    catalog: Catalog, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(status=500), Behavior(status=503))
    with pytest.raises(ProviderError) as info:
        await fallback.complete(catalog.get("chain", "chat"), CALL, time.monotonic() + 5, trace())
    message = info.value.message
    assert message.startswith("all deployments of model 'chain' failed")
    assert "dead:a" in message and "up:b" in message and "up:c" in message


async def test_deadline_stops_the_chain(catalog: Catalog, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_default(Behavior(hang=True))
    t = trace()
    started = time.monotonic()
    with pytest.raises(ProviderError):
        await fallback.complete(catalog.get("chain", "chat"), CALL, time.monotonic() + 0.5, t)
    assert time.monotonic() - started < 1.5
    assert t.attempts[-1].status in ("error", "skipped")


async def test_expired_deadline_calls_nothing(
    catalog: Catalog, fake_upstream: FakeUpstream
) -> None:
    t = trace()
    with pytest.raises(DeadlineExceeded):
        await fallback.complete(catalog.get("single", "chat"), CALL, time.monotonic() - 1, t)
    assert fake_upstream.requests() == []
    assert t.attempts[0].status == "skipped"


async def test_stream_falls_back_before_first_chunk(
    catalog: Catalog, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(status=503))
    t = trace()
    dep, first, rest = await fallback.open_stream(
        catalog.get("chain", "chat"), CALL, time.monotonic() + 5, t
    )
    assert dep.id == "up:c"
    chunks = [first] + [c async for c in rest]
    text = "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)
    assert text == "echo: hi"
