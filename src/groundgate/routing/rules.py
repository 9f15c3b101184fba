"""The rules router: a request leaves the cheapest tier when a rule fires. The flagship rules
(a tenant served by the top tier, a flagship keyword) send it to the top tier; the others (a
long prompt, a deep conversation, tools, images, a JSON schema) to the tier just above the
cheapest. The decision's reason names the rule that fired."""

from __future__ import annotations

import re

from groundgate.config_routing import RulesRouterConfig
from groundgate.routing.routers import RouteRequest, TierChoice


class RulesRouter:
    name = "rules"

    def __init__(self, config: RulesRouterConfig) -> None:
        self.config = config
        words = sorted({w.strip().lower() for w in config.flagship_keywords if w.strip()})
        # Whole words or phrases, case-insensitive: "prove" must not fire on "improve".
        self._keywords = (
            re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
            if words
            else None
        )

    async def choose(self, request: RouteRequest) -> TierChoice:
        tiers = request.tiers
        rule = self._flagship_rule(request)
        if rule is not None:
            return TierChoice(tiers[-1], rule)
        rule = self._leave_cheapest_rule(request)
        if rule is not None:
            return TierChoice(tiers[1], rule)
        return TierChoice(tiers[0], "no rule fired")

    def _flagship_rule(self, request: RouteRequest) -> str | None:
        if request.tenant in self.config.flagship_tenants:
            return "flagship_tenants"
        if self._keywords is not None:
            found = self._keywords.search(request.question)
            if found is not None:
                return f"flagship_keywords: {found.group(0).lower()}"
        return None

    def _leave_cheapest_rule(self, request: RouteRequest) -> str | None:
        config = self.config
        if request.prompt_tokens > config.max_cheap_tokens:
            return f"max_cheap_tokens: {request.prompt_tokens} > {config.max_cheap_tokens}"
        if request.messages > config.max_cheap_messages:
            return f"max_cheap_messages: {request.messages} > {config.max_cheap_messages}"
        if config.escalate_tools and request.tools:
            return "tools"
        if config.escalate_images and request.images:
            return "images"
        if config.escalate_json_schema and request.json_schema:
            return "json_schema"
        return None
