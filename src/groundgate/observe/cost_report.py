"""``groundgate report cost``'s numbers, from the cost ledger (``store/ledger.py``): what was
observed in a window of traces, and what that traffic would cost per month at 100K, 1M and
10M requests, with what-ifs. Pure: no store, no clock, no I/O (``cli/report_cost.py`` reads and
writes), so the same ledger always gives the same report.

Every request in the window is one of three kinds: a **cache hit** (the cache answered it), an
**error** (status ``error``, not a hit), or a **generated** answer (everything else: a model or
the grounded pipeline answered it, or the client went away). Generated answers are split by
the tier that generated them (``None``: a target without tiers). The observed cost per
request (mean, p50, p95) is over every request of the window, hits and errors included: what
traffic costs, request by request.

The projection model, per request (every rate a share of all requests)::

    usd/request = h * hit_usd + e * error_usd + (1 - h - e) * generated_usd
    generated_usd = sum over tiers t of  q_t * (input_usd_t + T_t * output_usd_per_token_t)
    usd/month(N) = N * usd/request + fixed(N)

- ``h``: the cache hit rate (observed, or ``--cache-hit-rate``); ``hit_usd`` the observed mean
  cost of a hit (0: a hit sends nothing upstream).
- ``e``: the observed error rate (capped at ``1 - h``), ``error_usd`` the observed mean cost of
  an error (what failed attempts were billed).
- ``q_t``: tier ``t``'s share of generated answers. ``--strong-share s`` sets the strong tiers'
  share of the *routed* answers to ``s``, scaling the strong tiers and the cheaper ones each
  in their observed proportions; answers of targets without tiers keep their share. A tier
  is strong where it is the top tier of a route in config (else the dearest tier seen).
- ``input_usd_t``: tier ``t``'s observed mean cost per answer less its output tokens' cost
  (the output tokens at their deployments' ``[prices]``; cascade answers it discarded stay
  here); ``output_usd_per_token_t`` that output cost per output token; ``T_t`` the observed
  mean output tokens per answer, or ``--output-tokens`` for every tier.
- ``fixed(N)``: the chosen deployment's monthly cost from ``[cost.deployments]``
  (``config_cost.py``), with replicas added when N exceeds their configured capacity.

Savings project the same way: a hit saves the observed mean saving per hit (the cached answer's
cost; ``generated_usd`` if no hit was seen), a routed answer its tier's observed mean saving
against the top tier (0 on the top tier).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from groundgate.config import Price
from groundgate.config_cost import DeploymentCost
from groundgate.observe.ledger import Totals, breakdown, totals, usd
from groundgate.store.ledger import LedgerRow

VOLUMES = (100_000, 1_000_000, 10_000_000)
PERCENTILES = (0.5, 0.95)
BREAKDOWN = ("day", "tenant", "key_id", "app", "model", "tier")


class ProjectionError(ValueError):
    """A what-if the observed traffic cannot answer (e.g. a strong share with no routing)."""


def share(part: float, whole: float) -> float:
    return round(part / whole, 6) if whole else 0.0


@dataclass(slots=True)
class TierCost:
    """The generated answers of one tier in the window."""

    tier: str | None
    strong: bool = False
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    output_usd: float = 0.0  # the completion tokens at their deployments' output prices
    output_price_weight: float = 0.0  # sum of requests x output USD per token, for fallbacks
    route_saved_usd: float = 0.0

    def add(self, row: LedgerRow, price: Price | None) -> None:
        out_per_token = price.output_per_mtok / 1_000_000 if price is not None else 0.0
        self.requests += row.requests
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens
        self.cost_usd += row.cost_usd
        self.output_usd += row.completion_tokens * out_per_token
        self.output_price_weight += row.requests * out_per_token
        self.route_saved_usd += row.route_saved_usd

    @property
    def output_usd_per_token(self) -> float:
        if self.completion_tokens:
            return self.output_usd / self.completion_tokens
        return self.output_price_weight / self.requests if self.requests else 0.0

    def usd_per_answer(self, output_tokens: float | None) -> float:
        if not self.requests:
            return 0.0
        if output_tokens is None:
            return self.cost_usd / self.requests
        # Never below 0: prices raised since the traces were written would make it so.
        input_usd = max(0.0, self.cost_usd - self.output_usd) / self.requests
        return input_usd + output_tokens * self.output_usd_per_token

    def as_dict(self, generated: int) -> dict[str, Any]:
        n = self.requests
        return {
            "tier": self.tier,
            "strong": self.strong,
            "requests": n,
            "share": share(n, generated),
            "cost_usd": usd(self.cost_usd),
            "cost_per_request_usd": usd(self.cost_usd / n) if n else 0.0,
            "prompt_tokens_per_request": round(self.prompt_tokens / n, 3) if n else 0.0,
            "completion_tokens_per_request": round(self.completion_tokens / n, 3) if n else 0.0,
            "route_saved_usd": usd(self.route_saved_usd),
        }


@dataclass(slots=True)
class Observed:
    rows: list[LedgerRow]
    percentiles: Mapping[float, float]
    all: Totals
    hits: Totals
    errors: Totals
    tiers: list[TierCost] = field(default_factory=list)

    @property
    def generated(self) -> int:
        return sum(t.requests for t in self.tiers)

    @property
    def strong_share(self) -> float | None:
        """The strong tiers' share of the routed answers (None: nothing was routed)."""
        routed = [t for t in self.tiers if t.tier is not None]
        total = sum(t.requests for t in routed)
        return share(sum(t.requests for t in routed if t.strong), total) if total else None

    def as_dict(self) -> dict[str, Any]:
        a, n = self.all, self.all.requests
        return {
            "requests": n,
            "errors": a.errors,
            "error_rate": share(a.errors, n),
            "cost_usd": usd(a.cost_usd),
            "cost_per_request_usd": {
                "mean": usd(a.cost_usd / n) if n else 0.0,
                **{f"p{round(p * 100)}": usd(v) for p, v in sorted(self.percentiles.items())},
            },
            "prompt_tokens_per_request": round(a.prompt_tokens / n, 3) if n else 0.0,
            "completion_tokens_per_request": round(a.completion_tokens / n, 3) if n else 0.0,
            "cache": {
                "hits": self.hits.requests,
                "hit_rate": share(self.hits.requests, n),
                "saved_usd": usd(a.cache_saved_usd),
            },
            "routes": {
                "generated": self.generated,
                "strong_share": self.strong_share,
                "saved_usd": usd(a.route_saved_usd),
                "tiers": [t.as_dict(self.generated) for t in self.tiers],
            },
            **breakdown(self.rows, BREAKDOWN),
        }


def observe(
    rows: Sequence[LedgerRow],
    percentiles: Mapping[float, float],
    prices: Mapping[str, Price],
    strong_tiers: Collection[str] = (),
) -> Observed:
    """The window's numbers. ``strong_tiers``: the tiers that top a route in config (empty:
    the tier with the dearest mean answer counts as strong)."""
    hit_rows = [r for r in rows if r.cache_hit]
    error_rows = [r for r in rows if not r.cache_hit and r.status == "error"]
    by_tier: dict[str | None, TierCost] = {}
    for row in rows:
        if row.cache_hit or row.status == "error":
            continue
        tier = by_tier.setdefault(row.tier, TierCost(row.tier))
        tier.add(row, prices.get(row.deployment) if row.deployment else None)
    tiers = sorted(by_tier.values(), key=lambda t: (t.tier is not None, t.tier or ""))
    routed = [t for t in tiers if t.tier is not None]
    if strong_tiers:
        for t in routed:
            t.strong = t.tier in strong_tiers
    elif routed:
        max(routed, key=lambda t: t.usd_per_answer(None)).strong = True
    return Observed(
        list(rows), dict(percentiles), totals(rows), totals(hit_rows), totals(error_rows), tiers
    )


@dataclass(frozen=True, slots=True)
class WhatIf:
    cache_hit_rate: float | None = None  # share of all requests the cache answers
    strong_share: float | None = None  # share of routed answers from a strong tier
    output_tokens: float | None = None  # mean output tokens of a generated answer

    def __post_init__(self) -> None:
        for name in ("cache_hit_rate", "strong_share"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ProjectionError(f"{name} is a share between 0 and 1, not {value}")
        if self.output_tokens is not None and self.output_tokens < 0:
            raise ProjectionError(f"output_tokens cannot be negative ({self.output_tokens})")


def _tier_shares(observed: Observed, strong_share: float | None) -> list[float]:
    """Each tier's share of generated answers, with the strong share applied."""
    generated = observed.generated
    shares = [t.requests / generated if generated else 0.0 for t in observed.tiers]
    if strong_share is None:
        return shares
    routed = [i for i, t in enumerate(observed.tiers) if t.tier is not None]
    strong = [i for i in routed if observed.tiers[i].strong]
    weak = [i for i in routed if not observed.tiers[i].strong]
    if not routed:
        raise ProjectionError("--strong-share: no routed answers in the window")
    if (strong_share > 0 and not strong) or (strong_share < 1 and not weak):
        side = "a strong tier" if not strong else "a cheaper tier"
        raise ProjectionError(f"--strong-share: no answers from {side} in the window to price")
    routed_share = sum(shares[i] for i in routed)
    for group, target in ((strong, strong_share), (weak, 1 - strong_share)):
        observed_share = sum(shares[i] for i in group)
        for i in group:
            shares[i] = routed_share * target * shares[i] / observed_share
    return shares


def project(
    observed: Observed,
    deployment: tuple[str, DeploymentCost],
    what_if: WhatIf = WhatIf(),
    volumes: Sequence[int] = VOLUMES,
) -> dict[str, Any]:
    """``{"assumptions": {...}, "projections": [one row per volume]}`` (see the module doc)."""
    a, n = observed.all, observed.all.requests
    hit_rate = what_if.cache_hit_rate
    if hit_rate is None:
        hit_rate = observed.hits.requests / n if n else 0.0
    error_rate = min(observed.errors.requests / n if n else 0.0, 1.0 - hit_rate)
    generated_rate = 1.0 - hit_rate - error_rate
    hits, errors = observed.hits, observed.errors
    hit_usd = hits.cost_usd / hits.requests if hits.requests else 0.0
    error_usd = errors.cost_usd / errors.requests if errors.requests else 0.0
    shares = _tier_shares(observed, what_if.strong_share)
    tiers = observed.tiers
    answer_usd = sum(
        q * t.usd_per_answer(what_if.output_tokens) for q, t in zip(shares, tiers, strict=True)
    )
    route_saved = sum(
        q * t.route_saved_usd / t.requests for q, t in zip(shares, tiers, strict=True) if t.requests
    )
    saved_per_hit = a.cache_saved_usd / hits.requests if hits.requests else answer_usd
    per_request = hit_rate * hit_usd + error_rate * error_usd + generated_rate * answer_usd
    output_tokens = what_if.output_tokens
    if output_tokens is None:
        generated = observed.generated
        output_tokens = sum(t.completion_tokens for t in tiers) / generated if generated else 0.0
    name, fixed = deployment
    strong_share = what_if.strong_share
    if strong_share is None:
        strong_share = observed.strong_share
    rows = []
    for volume in volumes:
        variable = volume * per_request
        fixed_usd = fixed.usd_per_month(volume)
        rows.append(
            {
                "requests_per_month": volume,
                "usd_per_month": usd(variable + fixed_usd),
                "variable_usd_per_month": usd(variable),
                "fixed_usd_per_month": usd(fixed_usd),
                "replicas": fixed.replicas_for(volume),
                "usd_per_request": usd((variable + fixed_usd) / volume),
                "cache_saved_usd_per_month": usd(volume * hit_rate * saved_per_hit),
                "route_saved_usd_per_month": usd(volume * generated_rate * route_saved),
            }
        )
    assumptions = {
        "what_if": {
            "cache_hit_rate": what_if.cache_hit_rate,
            "strong_share": what_if.strong_share,
            "output_tokens": what_if.output_tokens,
        },
        "cache_hit_rate": round(hit_rate, 6),
        "error_rate": round(error_rate, 6),
        "strong_share": None if strong_share is None else round(strong_share, 6),
        "output_tokens_per_answer": round(output_tokens, 3),
        "usd_per_generated_answer": usd(answer_usd),
        "usd_per_request": usd(per_request),
        "deployment": {"name": name, **fixed.model_dump()},
    }
    return {"assumptions": assumptions, "projections": rows}


def cost_report(
    observed: Observed, deployment: tuple[str, DeploymentCost], what_if: WhatIf = WhatIf()
) -> dict[str, Any]:
    """The whole report: ``{"observed", "assumptions", "projections"}``."""
    return {"observed": observed.as_dict(), **project(observed, deployment, what_if)}
