"""An input guard whose embedder fails: one that only flags lets the request through and says
it did not check; one that would block refuses it (fails closed). In-process, against the fake
upstream serving the guards' embedding model."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.errors import ProviderError
from groundgate.providers.base import ChatCall
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

CONFIG = """
[store]
path = "{tmp}/g.db"
[reliability]
max_attempts = 1
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[embedders.remote-int8]
deployments = ["up:all-MiniLM-L6-v2-int8"]
[cache]
embedder = "remote-int8"
[models.flags]
deployments = ["up:m"]
guards = {{ injection = "flag" }}
[models.blocks]
deployments = ["up:m"]
guards = {{ injection = "block" }}
"""


@pytest.mark.parametrize("model", ["flags", "blocks"])
async def test_a_failed_guard_embedding_flags_unchecked_or_fails_closed(
    tmp_path: Path, fake_upstream: FakeUpstream, model: str
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, fake=fake_upstream.url))
    container = Container(load_settings(path))
    await container.start()
    try:
        fake_upstream.script(Behavior(status=500))  # the embedding call fails
        call = ChatCall(messages=[{"role": "user", "content": "What is the capital of France?"}])
        ctx = container.new_chat(model, call)
        if model == "blocks":
            with pytest.raises(ProviderError):
                await container.complete(ctx)
            assert [r.path for r in fake_upstream.requests()] == ["/v1/embeddings"]
            return
        await container.complete(ctx)
        assert ctx.guards is not None
        assert ctx.guards.header() == "injection=unchecked"
        assert ctx.guards.decisions[0].detail["reason"].startswith("embedding failed")
        assert [r.path for r in fake_upstream.requests()] == [
            "/v1/embeddings",
            "/v1/chat/completions",
        ]
    finally:
        await container.stop()
