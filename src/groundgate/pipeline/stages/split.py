"""Split: A/B variants of an app or model (``variants``), one chosen per request, sticky per end
user or session when the client names one; the variant may change the model, pin a tier or swap
the prompt (``name@N`` or ``name@label``, resolved through the prompt registry when the
variant is chosen, so a label's move reaches the variant on its next request).

A request whose client already chose what the split varies (an ``/v1/ask`` that names its own
model, a pinned tier) keeps its choice and is left out of the split: counting it in a variant
it did not get would blur the comparison.
"""

from __future__ import annotations

from typing import Any

from groundgate.config_routing import Variant
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage
from groundgate.prompts.registry import PromptRegistry
from groundgate.routing.split import choose_variant


def split_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its config leaves it nothing to do. (Variants'
    prompts are checked with the apps' when the gateway starts: labels live in the store.)"""
    owner = target.app if target.app is not None else target.model
    if owner is None or not owner.variants:
        return None
    configured = target.app.model if target.app is not None else None
    return Split(target.name, owner.variants, configured_model=configured, prompts=services.prompts)


class Split(Stage):
    name = "split"
    span = "split"

    def __init__(
        self,
        target: str,
        variants: list[Variant],
        *,
        configured_model: str | None,
        prompts: PromptRegistry | None = None,  # needed when a variant swaps the prompt
    ) -> None:
        if prompts is None and any(v.prompt is not None for v in variants):
            raise ValueError("a split whose variants swap the prompt needs the prompt registry")
        self.target = target
        self.prompts = prompts
        self.variants = variants
        self.configured_model = configured_model  # an app's own model (None: a plain model)
        self.varies_model = any(v.model is not None for v in variants)
        self.varies_tier = any(v.tier is not None for v in variants)

    def _client_chose(self, ctx: RequestContext) -> bool:
        picked_model = (
            ctx.app is not None
            and self.configured_model is not None
            and ctx.app.model != self.configured_model
        )
        return (self.varies_model and picked_model) or (self.varies_tier and ctx.tier is not None)

    async def enter(self, ctx: RequestContext) -> None:
        if self._client_chose(ctx):
            return
        variant = choose_variant(self.target, self.variants, ctx.sticky_key)
        ctx.variant = variant.name
        applied: dict[str, Any] = {"target": self.target, "name": variant.name}
        app_changes: dict[str, str] = {}
        if variant.model is not None:
            ctx.variant_model = applied["model"] = variant.model
            app_changes["model"] = variant.model
        if variant.prompt is not None and self.prompts is not None:
            version = await self.prompts.resolve(variant.prompt)
            app_changes["prompt"] = applied["prompt"] = version.ref
            ctx.trace.attrs["prompt"] = {"requested": variant.prompt, "version": version.ref}
        if variant.tier is not None:
            ctx.tier = applied["tier"] = variant.tier
        if ctx.app is not None and app_changes:
            # The app as it runs for this request: the prompt stage, the cache key and the
            # response's ``groundgate.prompt`` read it.
            ctx.app = ctx.app.model_copy(update=app_changes)
        ctx.trace.attrs["variant"] = applied
