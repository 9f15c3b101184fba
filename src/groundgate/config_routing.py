"""An app's or model's ``route`` table (tiers and the router that picks one per request) and
its ``variants`` (A/B splits). Kept beside ``config.py``, which imports it.

```toml
[apps.support.route]
tiers = { cheap = "mixtral", flagship = "gpt-4o" }   # cheapest first: names -> models
router = "learned"                                   # none | rules | learned | cascade
pin = true                                           # clients may pin a tier

[[apps.support.variants]]
name = "b"
weight = 0.2
tier = "flagship"                                    # or model = "...", prompt = "name@version"
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RouterKind = Literal["none", "rules", "learned", "cascade"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RulesRouterConfig(_Strict):
    """The rules router: a request goes to the first tier above the cheapest one whose rule
    it meets; otherwise to the cheapest."""

    # Prompts longer than this (estimated tokens, all messages) leave the cheapest tier.
    max_cheap_tokens: int = Field(1500, ge=1)
    # Conversations deeper than this (messages) leave the cheapest tier.
    max_cheap_messages: int = Field(12, ge=1)
    # Requests with tools, images or a JSON schema leave the cheapest tier.
    escalate_tools: bool = True
    escalate_images: bool = True
    escalate_json_schema: bool = False
    # Words or phrases (case-insensitive) that send a request to the top tier.
    flagship_keywords: list[str] = Field(default_factory=list)
    # Tenants always served by the top tier.
    flagship_tenants: list[str] = Field(default_factory=list)


class LearnedRouterConfig(_Strict):
    """The learned router: the probability that the cheapest tier answers correctly, from the
    request's embedding and cheap features; calibrated to one target."""

    # A model file from ``groundgate route train`` (None: the one shipped in the package).
    model_path: str | None = None
    # The target, one of (None: the shipped calibration, the cheapest point keeping 95% of
    # the strong model's accuracy on held-out data):
    # - the share of requests sent to the top tier;
    strong_share: float | None = Field(None, ge=0, le=1)
    # - a cost ceiling: the cost of the traffic against sending all of it to the top tier,
    #   from the tiers' prices (turned into a strong share: see routing/routers.py);
    max_cost_ratio: float | None = Field(None, ge=0, le=1)
    # - a quality floor: the lowest probability of a good cheap answer the cheap tier gets.
    min_cheap_probability: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_target(self) -> LearnedRouterConfig:
        targets = (self.strong_share, self.max_cost_ratio, self.min_cheap_probability)
        if sum(t is not None for t in targets) > 1:
            raise ValueError("set one of strong_share, max_cost_ratio and min_cheap_probability")
        return self


class CascadeConfig(_Strict):
    """The cascade: the cheapest tier answers first; its answer is scored and escalated to the
    next tier when the score is below ``threshold``."""

    # Answer score below which the next tier is asked (None: the shipped verifier's).
    threshold: float | None = Field(None, ge=0, le=1)
    # How many tiers up a request may climb.
    max_escalations: int = Field(1, ge=1, le=5)


class RoutingConfig(_Strict):
    # Tier name -> model name, cheapest first (TOML keeps the order written).
    tiers: dict[str, str] = Field(default_factory=dict)
    router: RouterKind = "none"
    # The tier a request gets when the router has no say (``none``): default the cheapest.
    default_tier: str | None = None
    # Clients may pin a tier (``x-groundgate-tier`` or ``model: "NAME@TIER"``), if their key
    # may use the tier's model.
    pin: bool = True
    rules: RulesRouterConfig = RulesRouterConfig()
    learned: LearnedRouterConfig = LearnedRouterConfig()
    cascade: CascadeConfig = CascadeConfig()

    @model_validator(mode="after")
    def _tiers(self) -> RoutingConfig:
        if self.router != "none" and len(self.tiers) < 2:
            raise ValueError(f"router '{self.router}' needs at least two tiers")
        if self.default_tier is not None and self.default_tier not in self.tiers:
            raise ValueError(f"default_tier {self.default_tier!r} is not one of the tiers")
        return self


class Variant(_Strict):
    """One arm of an A/B split: what it changes, and its share of the traffic."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(gt=0)
    model: str | None = None  # generate with this model instead
    tier: str | None = None  # pin this tier
    prompt: str | None = None  # use this prompt (``name@N`` or ``name@label``), apps only


# -- cross-references (checked by ``Settings``, which knows every app and model) -------------


@dataclass(frozen=True, slots=True)
class RoutedTarget:
    """An app or model as the checks below see it: ``where`` is its config table."""

    where: str
    route: RoutingConfig | None
    variants: Sequence[Variant]
    is_app: bool


def route_problems(targets: Sequence[RoutedTarget], models: Mapping[str, bool]) -> list[str]:
    """Tiers name chat models that generate themselves (routers do not nest: a tier's model
    must have deployments); a router model (no deployments) is not one of its own tiers.
    ``models``: every chat model, and whether it has deployments of its own."""
    problems: list[str] = []
    for target in targets:
        if target.route is None:
            continue
        for tier, model in target.route.tiers.items():
            if model not in models:
                problems.append(f"{target.where}.route.tiers.{tier}: unknown model {model!r}")
            elif not models[model]:
                problems.append(
                    f"{target.where}.route.tiers.{tier}: {model!r} has no deployments of its "
                    "own (a router model cannot be a tier)"
                )
    return problems


def variant_problems(targets: Sequence[RoutedTarget], models: Mapping[str, bool]) -> list[str]:
    """A/B variants that name what does not exist. Prompt versions are checked when the
    gateway builds the split stage (the prompt registry is a layer above config)."""
    problems: list[str] = []
    for target in targets:
        where = target.where
        names = [v.name for v in target.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            problems.append(f"{where}.variants: names used twice: {', '.join(twice)}")
        tiers = target.route.tiers if target.route is not None else {}
        for i, variant in enumerate(target.variants):
            at = f"{where}.variants[{i}]"
            if variant.model is not None and variant.tier is not None:
                problems.append(f"{at}: set model or tier, not both")
            if variant.model is not None and variant.model not in models:
                problems.append(f"{at}.model: unknown model {variant.model!r}")
            if variant.tier is not None and variant.tier not in tiers:
                known = ", ".join(tiers) or f"none: {where}.route declares no tiers"
                problems.append(f"{at}.tier: unknown tier {variant.tier!r} (tiers: {known})")
            if variant.prompt is not None and not target.is_app:
                problems.append(f"{at}.prompt: only an app has a prompt")
    return problems
