"""The routers and the cascade's answer checks on their own: each rule of the rules router (the
ones the end-to-end tests leave out: depth, images, JSON schema, tenant policy, whole words),
the learned router's threshold from its target, and the form checks."""

from __future__ import annotations

from typing import Any

import pytest

from groundgate.config_routing import LearnedRouterConfig, RulesRouterConfig
from groundgate.routing.routers import LearnedTierRouter, RouteRequest, strong_share_for_cost
from groundgate.routing.rules import RulesRouter
from groundgate.routing.scoring import form_problem, verifier_scorer

TIERS = ("cheap", "mid", "flagship")


def request(**changes: Any) -> RouteRequest:
    async def embedding() -> list[float]:
        return [0.5]

    fields: dict[str, Any] = {
        "tiers": TIERS, "default_tier": "cheap", "question": "What is the capital of France?",
        "prompt_tokens": 20, "messages": 1, "tools": False, "images": False,
        "json_schema": False, "tenant": "acme", "embedding": embedding,
    }  # fmt: skip
    return RouteRequest(**{**fields, **changes})


RULES = RulesRouterConfig(
    max_cheap_messages=4,
    escalate_json_schema=True,
    flagship_keywords=["prove", "step by step"],
    flagship_tenants=["vip"],
)


@pytest.mark.parametrize(
    ("changes", "tier", "reason"),
    [
        ({}, "cheap", "no rule fired"),
        ({"messages": 5}, "mid", "max_cheap_messages: 5 > 4"),
        ({"images": True}, "mid", "images"),
        ({"json_schema": True}, "mid", "json_schema"),
        ({"tenant": "vip"}, "flagship", "flagship_tenants"),
        ({"question": "Explain it Step By Step"}, "flagship", "flagship_keywords: step by step"),
        ({"question": "How do I improve this?"}, "cheap", "no rule fired"),  # not "prove"
    ],
)
async def test_each_rule_sends_the_request_up_and_names_itself(
    changes: dict[str, Any], tier: str, reason: str
) -> None:
    choice = await RulesRouter(RULES).choose(request(**changes))
    assert (choice.tier, choice.reason, choice.score) == (tier, reason, None)


class StandIn:
    """What routing/learned.py's LearnedRouter offers, with a fixed probability."""

    embedder = "all-MiniLM-L6-v2-int8"
    threshold = 0.6

    def __init__(self, p: float) -> None:
        self.p = p
        self.seen: list[tuple[str, Any]] = []

    def p_cheap_correct(self, text: str, vector: Any) -> float:
        self.seen.append((text, vector))
        return self.p

    def threshold_for_strong_share(self, share: float) -> float:
        return 1 - share


@pytest.mark.parametrize(
    ("config", "p", "tier"),
    [
        (LearnedRouterConfig(), 0.65, "cheap"),  # the shipped threshold, 0.6
        (LearnedRouterConfig(), 0.55, "flagship"),
        (LearnedRouterConfig(min_cheap_probability=0.7), 0.65, "flagship"),
        (LearnedRouterConfig(strong_share=0.5), 0.55, "cheap"),  # threshold 0.5
        # A cost ceiling of 0.28 with the cheap tier at a tenth of the price: (0.28 - 0.1) /
        # (1 - 0.1) = 20% may go up, so the threshold is 0.8.
        (LearnedRouterConfig(max_cost_ratio=0.28), 0.75, "flagship"),
        (LearnedRouterConfig(max_cost_ratio=0.28), 0.85, "cheap"),
    ],
)
async def test_the_learned_router_trusts_the_cheap_tier_above_its_threshold(
    config: LearnedRouterConfig, p: float, tier: str
) -> None:
    model = StandIn(p)
    choice = await LearnedTierRouter(model, config, cheap_price_ratio=0.1).choose(request())
    assert (choice.tier, choice.score) == (tier, p)
    assert model.seen == [("What is the capital of France?", [0.5])]


@pytest.mark.parametrize(
    ("answer", "finish", "problem"),
    [
        ("Paris.", "stop", None),
        ("", "stop", "empty answer"),
        ("Paris is the capital and", "length", "cut off (finish_reason length)"),
        ("I'm sorry, but I can't help with that.", "stop", "refusal"),
        ("As an AI language model, I cannot know.", "stop", "refusal"),
    ],
)
def test_the_form_checks(answer: str, finish: str, problem: str | None) -> None:
    assert form_problem(answer, finish) == problem


def test_a_verifier_scores_only_what_passes_the_form_checks() -> None:
    class Verifier:
        threshold = 0.3

        def p_correct(self, prompt: str, answer: str, finish_reason: str | None) -> float:
            return 0.9

    scorer = verifier_scorer(Verifier())
    assert (scorer.threshold, scorer.blocking) == (0.3, True)
    assert scorer.score("q", "Paris.", "stop") == 0.9
    assert scorer.score("q", "", "stop") == 0.0


@pytest.mark.parametrize(
    ("ceiling", "ratio", "share"),
    [(0.28, 0.1, 0.2), (0.05, 0.1, 0.0), (1.0, 0.1, 1.0), (0.5, 1.0, 0.0)],
)
def test_a_cost_ceiling_is_a_strong_share(ceiling: float, ratio: float, share: float) -> None:
    assert strong_share_for_cost(ceiling, ratio) == pytest.approx(share)
