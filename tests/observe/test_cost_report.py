"""The cost report's arithmetic on hand-made ledger rows (observe/cost_report.py): the observed
figures, the projection model and its what-ifs, the edges where a what-if has nothing to
price, and the fixed monthly cost table (config_cost.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from groundgate.config import Price, load_settings
from groundgate.config_cost import CostConfig, DeploymentCost
from groundgate.errors import ConfigError
from groundgate.observe.cost_report import (
    ProjectionError,
    WhatIf,
    cost_report,
    observe,
    project,
)
from groundgate.observe.ledger import usd
from groundgate.store.ledger import LedgerRow

# USD per token: cheap 1e-6 in / 2e-6 out; strong 1e-5 in / 3e-5 out.
PRICES = {
    "p:cheap": Price(input_per_mtok=1.0, output_per_mtok=2.0),
    "p:strong": Price(input_per_mtok=10.0, output_per_mtok=30.0),
}
FREE = ("none", DeploymentCost(replicas=1))


def row(**fields: Any) -> LedgerRow:
    base: dict[str, Any] = dict(
        day="2026-03-01",
        tenant="t",
        key_id="k",
        app=None,
        model="m",
        deployment="p:cheap",
        tier=None,
        status="ok",
        cache_hit=False,
        requests=1,
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=0.0,
        cache_saved_usd=0.0,
        route_saved_usd=0.0,
    )
    return LedgerRow(**{**base, **fields})


def answers(n: int, tier: str | None, deployment: str, **fields: Any) -> LedgerRow:
    """``n`` answers of 100 prompt and 50 completion tokens each at their deployment's price."""
    price = PRICES[deployment]
    each = (100 * price.input_per_mtok + 50 * price.output_per_mtok) / 1e6
    return row(
        requests=n,
        tier=tier,
        deployment=deployment,
        prompt_tokens=100 * n,
        completion_tokens=50 * n,
        cost_usd=n * each,
        **fields,
    )


# 10 requests: 4 cheap answers (2e-4 each, each saving 2.3e-3 against the strong tier), 2 strong
# answers (2.5e-3 each), 3 cache hits (saving 2e-4 each), 1 error.
LEDGER = [
    answers(4, "cheap", "p:cheap", route_saved_usd=4 * 2.3e-3),
    answers(2, "strong", "p:strong"),
    row(requests=3, cache_hit=True, tier="cheap", cache_saved_usd=6e-4),
    row(status="error", key_id="k2"),
]


def test_observed_figures() -> None:
    data = observe(LEDGER, {0.5: 2e-4, 0.95: 2.5e-3}, PRICES, {"strong"}).as_dict()
    assert (data["requests"], data["errors"], data["error_rate"]) == (10, 1, 0.1)
    assert data["cost_usd"] == usd(4 * 2e-4 + 2 * 2.5e-3)
    assert data["cost_per_request_usd"] == {"mean": usd(5.8e-4), "p50": 2e-4, "p95": 2.5e-3}
    assert (data["prompt_tokens_per_request"], data["completion_tokens_per_request"]) == (60, 30)
    assert data["cache"] == {"hits": 3, "hit_rate": 0.3, "saved_usd": 6e-4}
    routes = data["routes"]
    assert (routes["generated"], routes["strong_share"]) == (6, round(2 / 6, 6))
    assert routes["saved_usd"] == usd(9.2e-3)
    assert [(t["tier"], t["strong"], t["requests"]) for t in routes["tiers"]] == [
        ("cheap", False, 4),
        ("strong", True, 2),
    ]
    assert [(k["key_id"], k["requests"]) for k in data["by_key_id"]] == [("k", 9), ("k2", 1)]


def test_without_configured_tiers_the_dearest_tier_is_strong() -> None:
    tiers = observe(LEDGER, {}, PRICES).tiers
    assert [(t.tier, t.strong) for t in tiers] == [("cheap", False), ("strong", True)]


def test_the_projection_at_observed_rates_is_the_mean_cost_per_request() -> None:
    deployment = ("two", DeploymentCost(replicas=2, usd_per_replica_month=10.0, redis_usd_month=5))
    result = project(observe(LEDGER, {}, PRICES, {"strong"}), deployment)
    first = result["projections"][0]
    assert first == {
        "requests_per_month": 100_000,
        "usd_per_month": usd(100_000 * 5.8e-4 + 25),
        "variable_usd_per_month": usd(100_000 * 5.8e-4),
        "fixed_usd_per_month": 25.0,
        "replicas": 2,
        "usd_per_request": usd((100_000 * 5.8e-4 + 25) / 100_000),
        "cache_saved_usd_per_month": usd(100_000 * 0.3 * 2e-4),
        "route_saved_usd_per_month": usd(100_000 * 0.6 * (4 / 6) * 2.3e-3),
    }
    assert result["assumptions"]["output_tokens_per_answer"] == 50


def test_what_ifs() -> None:
    observed = observe(LEDGER, {}, PRICES, {"strong"})
    what_if = WhatIf(cache_hit_rate=0.5, strong_share=0.5, output_tokens=100)
    result = project(observed, FREE, what_if)
    # An answer of 100 output tokens: cheap 1e-4 + 2e-4, strong 1e-3 + 3e-3; half of each.
    per_answer = 0.5 * 3e-4 + 0.5 * 4e-3
    assert result["assumptions"]["usd_per_generated_answer"] == usd(per_answer)
    # 50% hits, 10% errors (free), 40% generated.
    assert result["assumptions"]["usd_per_request"] == usd(0.4 * per_answer)
    assert result["projections"][1]["variable_usd_per_month"] == usd(1e6 * 0.4 * per_answer)
    # The routing saving at the new mix: only the cheap half saves.
    saved = 1e6 * 0.4 * 0.5 * 2.3e-3
    assert result["projections"][1]["route_saved_usd_per_month"] == usd(saved)


def test_a_cache_hit_rate_beyond_what_errors_leave_caps_the_error_rate() -> None:
    result = project(observe(LEDGER, {}, PRICES), FREE, WhatIf(cache_hit_rate=0.95))
    assert (result["assumptions"]["error_rate"], result["assumptions"]["cache_hit_rate"]) == (
        0.05,
        0.95,
    )
    # All hits: nothing is generated, nothing spent upstream.
    everything = project(observe(LEDGER, {}, PRICES), FREE, WhatIf(cache_hit_rate=1.0))
    assert everything["projections"][2]["variable_usd_per_month"] == 0.0


def test_unrouted_answers_keep_their_share_under_a_strong_share() -> None:
    ledger = [*LEDGER, answers(6, None, "p:cheap")]
    observed = observe(ledger, {}, PRICES, {"strong"})
    result = project(observed, FREE, WhatIf(strong_share=1.0))
    # 12 answers: 6 unrouted (cheap prices) stay; the 6 routed all go strong.
    assert result["assumptions"]["usd_per_generated_answer"] == usd(0.5 * 2e-4 + 0.5 * 2.5e-3)


@pytest.mark.parametrize(
    ("ledger", "share", "message"),
    [
        ([answers(3, None, "p:cheap")], 0.5, "no routed answers"),
        ([answers(3, "cheap", "p:cheap")], 0.5, "no answers from a strong tier"),
        ([answers(3, "strong", "p:strong")], 0.5, "no answers from a cheaper tier"),
    ],
)
def test_a_strong_share_needs_both_sides_observed(
    ledger: list[LedgerRow], share: float, message: str
) -> None:
    observed = observe(ledger, {}, PRICES, {"strong"})
    with pytest.raises(ProjectionError, match=message):
        project(observed, FREE, WhatIf(strong_share=share))
    # Everything to the side that was observed is answerable.
    side = 1.0 if "cheaper" in message else 0.0
    if "routed" not in message:
        project(observed, FREE, WhatIf(strong_share=side))


def test_what_ifs_are_checked() -> None:
    with pytest.raises(ProjectionError, match="between 0 and 1"):
        WhatIf(cache_hit_rate=1.5)
    with pytest.raises(ProjectionError, match="negative"):
        WhatIf(output_tokens=-1)


def test_an_empty_window_projects_the_fixed_cost_only() -> None:
    deployment = ("one", DeploymentCost(replicas=1, usd_per_replica_month=40.0))
    report = cost_report(observe([], {}, PRICES), deployment, WhatIf(output_tokens=500))
    assert report["observed"]["requests"] == 0
    assert report["observed"]["cost_per_request_usd"] == {"mean": 0.0}
    assert [p["usd_per_month"] for p in report["projections"]] == [40.0, 40.0, 40.0]


def test_an_unpriced_deployment_keeps_its_observed_cost_under_an_output_what_if() -> None:
    unpriced = row(requests=2, tier=None, deployment="p:other", completion_tokens=100,
                   cost_usd=0.5)  # fmt: skip
    result = project(observe([unpriced], {}, PRICES), FREE, WhatIf(output_tokens=1000))
    assert result["assumptions"]["usd_per_generated_answer"] == 0.25


def test_deployment_costs_merge_over_the_examples_and_add_replicas_with_volume() -> None:
    config = CostConfig.model_validate(
        {
            "deployment": "mine",
            "deployments": {
                "embedded": {"usd_per_replica_month": 10.0},
                "mine": {"replicas": 2, "usd_per_replica_month": 5.0,
                         "requests_per_replica_month": 1_000_000},
            },
        }
    )  # fmt: skip
    assert set(config.deployments) == {"embedded", "scale-out", "mine"}
    assert config.deployments["embedded"] == DeploymentCost(replicas=1, usd_per_replica_month=10.0)
    mine = config.deployments["mine"]
    assert [mine.replicas_for(n) for n in (100_000, 2_000_000, 2_000_001)] == [2, 2, 3]
    assert mine.usd_per_month(10_000_000) == 50.0
    with pytest.raises(ValidationError, match=r"'nope' is not in cost\.deployments"):
        CostConfig.model_validate({"deployment": "nope"})
    with pytest.raises(ValidationError):
        CostConfig.model_validate({"deployments": {"x": {"replicas": 0}}})


def test_the_cost_table_loads_from_the_config_file(tmp_path: Path) -> None:
    assert load_settings(None).cost.deployment == "embedded"
    path = tmp_path / "groundgate.toml"
    path.write_text(
        '[cost]\ndeployment = "scale-out"\n[cost.deployments.scale-out]\nreplicas = 5\n'
    )
    chosen = load_settings(path).cost
    assert chosen.deployment == "scale-out"
    assert chosen.deployments["scale-out"].replicas == 5
    assert chosen.deployments["scale-out"].postgres_usd_month == 150.0  # the example's
    path.write_text('[cost]\ndeployment = "k8s"\n')
    with pytest.raises(ConfigError, match="cost"):
        load_settings(path)
