"""The response cache end to end, on both backends: a real gateway (keys required), a real
fake upstream counting the calls that reach it, the official openai SDK and raw HTTP."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
CONFIG = """
[auth]
mode = "required"
[cache]
backend = "{backend}"
[traces]
flush_interval_ms = 20
[reliability]
breaker_failures = 100000
breaker_min_calls = 100000
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.gpt]
deployments = ["up:gpt-4o-mini"]
cache = {{ exact = true, semantic = true, threshold = 0.95 }}
[models.plain]
deployments = ["up:gpt-4o-mini"]
[apps.faq]
knowledge_base = "faq"
model = "plain"
[apps.faq-twin]
knowledge_base = "faq"
model = "plain"
[apps.faq-local]
knowledge_base = "faq"
model = "local"
[prices."up:gpt-4o-mini"]
input_per_mtok = 1000.0
output_per_mtok = 1000.0
"""
FAQ = [
    {"id": "refunds", "title": "Refunds", "text": "Refunds are accepted within 30 days."},
    {"id": "shipping", "title": "Shipping", "text": "Shipping takes 5 business days."},
]


@dataclass
class Site:
    gateway: GatewayProcess
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, who: str = "acme") -> httpx.Client:
        headers = {"authorization": f"Bearer {self.keys[who]}"}
        return httpx.Client(base_url=self.gateway.url, headers=headers, timeout=30)

    def sdk(self, who: str = "acme") -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.gateway.url + "/v1", api_key=self.keys[who], max_retries=0, timeout=30
        )


@pytest.fixture(scope="module", params=["memory", "redis"])
def site(
    request: pytest.FixtureRequest,
    fake_upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    env = {"GROUNDGATE_ADMIN_KEY": ADMIN_KEY}
    if request.param == "redis":
        env["GROUNDGATE_REDIS_URL"] = request.getfixturevalue("redis_server").url
    workdir: Path = tmp_path_factory.mktemp(f"cache-{request.param}")
    config = CONFIG.format(backend=request.param, fake=fake_upstream_server.url)
    site = Site(start_gateway(config, workdir, env=env))
    try:
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=site.gateway.url, headers=admin, timeout=30) as client:
            for who, tenant, scopes in [
                ("acme", "acme", ["chat", "ingest"]),
                ("globex", "globex", ["chat", "ingest"]),
                ("acme-admin", "acme", ["chat", "admin"]),
            ]:
                resp = client.post(
                    "/v1/admin/keys", json={"name": who, "tenant": tenant, "scopes": scopes}
                )
                assert resp.status_code == 201, resp.text
                site.keys[who] = resp.json()["key"]
        for who in ("acme", "globex"):
            with site.client(who) as client:
                resp = client.post("/v1/knowledge-bases/faq/documents", json={"documents": FAQ})
                assert resp.status_code == 200, resp.text
        yield site
    finally:
        site.gateway.stop()


def chat(client: httpx.Client, question: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", None)
    body = {
        "model": extra.pop("model", "gpt"),
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        **extra,
    }
    resp = client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp


def content(resp: httpx.Response) -> str:
    return str(resp.json()["choices"][0]["message"]["content"])


def unique(text: str) -> str:
    return f"{text} ({secrets.token_hex(3)})"  # each test its own questions: no shared state


def test_exact_hit_is_served_without_upstream_and_costs_nothing(
    site: Site, fake_upstream: FakeUpstream
) -> None:
    question = unique("What is the capital of France?")
    fake_upstream.script(Behavior(content="Paris.", prompt_tokens=9, completion_tokens=2))
    with site.client() as client:
        first = chat(client, question)
        assert first.headers["x-groundgate-cache"] == "miss"
        assert first.headers["x-groundgate-source"] == "model"
        assert float(first.headers["x-groundgate-cost-usd"]) > 0
        second = chat(client, "  " + question.upper() + "  ")  # same after normalisation
        assert len(fake_upstream.requests()) == 1
        assert second.headers["x-groundgate-source"] == "cache"
        assert second.headers["x-groundgate-cache"] == "exact"
        assert float(second.headers["x-groundgate-cost-usd"]) == 0
        body = second.json()
        assert body["choices"] == first.json()["choices"]
        assert body["usage"]["total_tokens"] == 0
        cache = body["groundgate"]["cache"]
        assert cache["status"] == "exact" and cache["saved_usd"] > 0
        assert cache["cached_trace_id"] == first.json()["groundgate"]["trace_id"]
        trace = _trace(client, body["groundgate"]["trace_id"])
    assert [span["name"] for span in trace["spans"]] == ["route", "cache_lookup"]
    assert trace["source"] == "cache" and trace["cost_usd"] == 0
    assert trace["attrs"]["cache"]["status"] == "exact"


def _trace(client: httpx.Client, trace_id: str) -> dict[str, Any]:
    for _ in range(100):  # traces are written in batches, off the response path
        resp = client.get(f"/v1/traces/{trace_id}")
        if resp.status_code == 200:
            return resp.json()  # type: ignore[no-any-return]
        time.sleep(0.02)
    raise AssertionError(f"trace {trace_id} never appeared")


def test_sampled_requests_and_uncached_models_always_go_upstream(
    site: Site, fake_upstream: FakeUpstream
) -> None:
    question = unique("Write a haiku about the sea")
    with site.client() as client:
        for _ in range(2):
            resp = chat(client, question, temperature=0.8)
            assert "x-groundgate-cache" not in resp.headers
            resp = chat(client, question, model="plain")
            assert resp.headers["x-groundgate-source"] == "model"
    assert len(fake_upstream.requests()) == 4


def test_no_cache_bypasses_reads_but_not_writes_and_no_store_skips_both(
    site: Site, fake_upstream: FakeUpstream
) -> None:
    question = unique("What is the boiling point of water?")
    with site.client() as client:
        fake_upstream.script(Behavior(content="100 C"))
        chat(client, question)
        fake_upstream.script(Behavior(content="100 degrees Celsius"))
        fresh = chat(client, question, headers={"cache-control": "no-cache"})
        assert fresh.headers["x-groundgate-cache"] == "bypass"
        assert content(fresh) == "100 degrees Celsius"
        again = chat(client, question)  # the fresh answer replaced the old one
        assert again.headers["x-groundgate-cache"] == "exact"
        assert content(again) == "100 degrees Celsius"
        other = unique("What is the freezing point of water?")
        chat(client, other, headers={"cache-control": "no-store"})
        assert chat(client, other).headers["x-groundgate-cache"] == "miss"
    assert len(fake_upstream.requests()) == 4


def test_semantic_hit_and_the_guard_against_a_different_number(
    site: Site, fake_upstream: FakeUpstream
) -> None:
    # Each question appears in this test only (cosines measured with the bundled embedder:
    # 0.984 for the vacation pair, 0.983 for the laptops pair).
    with site.client() as client:
        fake_upstream.script(Behavior(content="28 days."))
        chat(client, "How many vacation days do employees get?")
        hit = chat(client, "How many vacation days does an employee get?")
        assert hit.headers["x-groundgate-cache"] == "semantic"
        assert 0.95 <= float(hit.headers["x-groundgate-cache-similarity"]) < 1
        assert content(hit) == "28 days."
        fake_upstream.script(Behavior(content="A list of five."))
        chat(client, "What are the top 5 laptops of 2023?")
        fake_upstream.script(Behavior(content="A list of ten."))
        vetoed = chat(client, "What are the top 10 laptops of 2023?")
        assert vetoed.headers["x-groundgate-cache"] == "miss"
        assert content(vetoed) == "A list of ten."
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    metrics = httpx.get(site.gateway.url + "/metrics", headers=admin, timeout=30).text
    cache_lines = [line for line in metrics.splitlines() if line.startswith("groundgate_cache")]
    assert any(
        'groundgate_cache_guard_rejections_total{rule="numbers",target="gpt"}' in line
        or 'groundgate_cache_guard_rejections_total{target="gpt",rule="numbers"}' in line
        for line in cache_lines
    ), cache_lines
    assert any("lookups_total" in line and '"semantic"' in line for line in cache_lines)
    assert len(fake_upstream.requests()) == 3


def test_streamed_and_unstreamed_replays_match_the_original(
    site: Site, fake_upstream: FakeUpstream
) -> None:
    text = "Refunds are accepted within 30 days of delivery, no questions asked, always."
    sdk = site.sdk()
    for first_streamed in (False, True):
        question = unique("What is the refund policy?")
        fake_upstream.script(Behavior(content=text, stream_chunks=5))
        messages: Any = [{"role": "user", "content": question}]
        original = _ask_sdk(sdk, messages, stream=first_streamed)
        assert original == text
        assert _ask_sdk(sdk, messages, stream=not first_streamed) == text
        assert _ask_sdk(sdk, messages, stream=first_streamed) == text
    assert len(fake_upstream.requests()) == 2


def _ask_sdk(sdk: openai.OpenAI, messages: Any, *, stream: bool) -> str:
    if not stream:
        reply = sdk.chat.completions.create(model="gpt", messages=messages, temperature=0)
        assert reply.choices[0].finish_reason == "stop"
        return reply.choices[0].message.content or ""
    pieces, finish = [], None
    for chunk in sdk.chat.completions.create(
        model="gpt", messages=messages, temperature=0, stream=True
    ):
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert finish == "stop"
    return "".join(pieces)


def test_no_hit_across_tenants(site: Site, fake_upstream: FakeUpstream) -> None:
    question = unique("What is our launch date?")
    with site.client("acme") as acme, site.client("globex") as globex:
        fake_upstream.script(Behavior(content="acme launches on the 5th (confidential)"))
        chat(acme, question)
        assert chat(acme, question).headers["x-groundgate-cache"] == "exact"
        theirs = chat(globex, question)
        assert theirs.headers["x-groundgate-cache"] == "miss"
        assert "acme" not in content(theirs)
        paraphrase = chat(globex, question.replace("our", "the"))
        assert "acme" not in content(paraphrase)
        # The native route too: same app, same question, other tenant.
        asked = {"app": "faq-local", "question": "How long do refunds take?"}
        assert acme.post("/v1/ask", json=asked).json()["source"] in ("rag", "cache")
        assert acme.post("/v1/ask", json=asked).json()["cache"]["status"] == "exact"
        theirs_ask = globex.post("/v1/ask", json=asked).json()
        assert theirs_ask["cache"]["status"] == "miss" and theirs_ask["source"] == "rag"


def test_no_hit_across_apps_and_grounded_answers_cite(
    site: Site, fake_upstream: FakeUpstream
) -> None:
    question = unique("How long do refunds take?")
    with site.client() as client:
        first = chat(client, question, model="faq")
        assert first.headers["x-groundgate-cache"] == "miss"
        cited = first.json()["groundgate"]["citations"]
        hit = chat(client, question, model="faq")
        assert hit.headers["x-groundgate-cache"] == "exact"
        assert hit.json()["groundgate"]["citations"] == cited
        assert hit.json()["groundgate"]["knowledge_base"] == "faq"
        twin = chat(client, question, model="faq-twin")
        assert twin.headers["x-groundgate-cache"] == "miss"
    assert len(fake_upstream.requests()) == 2


def test_a_document_change_is_never_answered_from_the_old_cache(site: Site) -> None:
    question = "How long does shipping take?"
    with site.client("acme") as client:
        first = chat(client, question, model="faq-local")
        assert "5 business days" in content(first)
        assert chat(client, question, model="faq-local").headers["x-groundgate-cache"] == "exact"
        doc = {"id": "shipping", "title": "Shipping", "text": "Shipping takes 2 business days."}
        resp = client.post("/v1/knowledge-bases/faq/documents", json={"documents": [doc]})
        assert resp.json()["documents"][0]["status"] == "updated"
        after = chat(client, question, model="faq-local")
        assert after.headers["x-groundgate-cache"] == "miss"
        assert "2 business days" in content(after)
        assert chat(client, question, model="faq-local").headers["x-groundgate-cache"] == "exact"
        resp = client.delete("/v1/knowledge-bases/faq/documents/shipping")
        assert resp.status_code == 200
        gone = chat(client, question, model="faq-local")
        assert gone.headers["x-groundgate-cache"] == "miss"
        assert "2 business days" not in content(gone)
        client.post("/v1/knowledge-bases/faq/documents", json={"documents": FAQ})


def test_operators_clear_their_own_tenant_only(site: Site, fake_upstream: FakeUpstream) -> None:
    question = unique("Who is the CEO?")
    acme, admin, globex = site.client("acme"), site.client("acme-admin"), site.client("globex")
    with acme, admin, globex:
        chat(acme, question)
        chat(globex, question)
        assert admin.delete("/v1/cache", params={"tenant": "globex"}).status_code == 403
        assert acme.delete("/v1/cache").status_code == 403  # no admin scope
        cleared = admin.delete("/v1/cache", params={"app": "gpt"})
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["tenant"] == "acme" and cleared.json()["deleted"] >= 1
        assert chat(acme, question).headers["x-groundgate-cache"] == "miss"
        assert chat(globex, question).headers["x-groundgate-cache"] == "exact"
