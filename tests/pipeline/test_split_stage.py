"""The split stage: a tier variant pins ctx.tier (the route stage honours the pin); a request
whose client already chose what the split varies is left out of it."""

from __future__ import annotations

import time

from groundgate.config import AppConfig
from groundgate.config_routing import Variant
from groundgate.observe.trace import Trace
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stages.split import Split
from groundgate.providers.base import ChatCall


def context(app: AppConfig | None = None, key: str = "user:u") -> RequestContext:
    trace = Trace(id="t", tenant="default", endpoint="chat.completions", model="bot")
    ctx = RequestContext(
        trace=trace, model="bot", call=ChatCall(messages=[]), deadline=time.monotonic() + 5
    )
    ctx.app, ctx.app_name, ctx.sticky_key = app, "bot" if app else None, key
    return ctx


async def test_a_tier_variant_pins_the_tier_unless_the_client_pinned_one() -> None:
    split = Split("bot", [Variant(name="top", weight=1, tier="flagship")], configured_model=None)
    ctx = context()
    await split.enter(ctx)
    assert (ctx.variant, ctx.tier) == ("top", "flagship")
    assert ctx.trace.attrs["variant"] == {"target": "bot", "name": "top", "tier": "flagship"}
    pinned = context()
    pinned.tier = "cheap"  # the client's own pin (x-groundgate-tier): kept, and not in the split
    await split.enter(pinned)
    assert (pinned.variant, pinned.tier, pinned.trace.attrs) == (None, "cheap", {})


async def test_an_ask_that_names_its_model_is_left_out_of_a_model_split() -> None:
    app = AppConfig(knowledge_base="kb", model="small")
    split = Split("bot", [Variant(name="b", weight=1, model="big")], configured_model="small")
    ctx = context(app)
    await split.enter(ctx)
    assert (ctx.variant, ctx.variant_model, ctx.app and ctx.app.model) == ("b", "big", "big")
    chosen = context(app.model_copy(update={"model": "other"}))  # /v1/ask with "model"
    await split.enter(chosen)
    assert (chosen.variant, chosen.variant_model, chosen.app and chosen.app.model) == (
        None,
        None,
        "other",
    )
