"""An app's or model's tiers as the route stage uses them: each tier's catalog entry, in the
order config declares them (cheapest first), and what a request would cost on each."""

from __future__ import annotations

from dataclasses import dataclass

from groundgate.config_routing import RoutingConfig
from groundgate.errors import GroundgateError, InvalidRequest
from groundgate.observe.cost import PriceTable, TokenCounts
from groundgate.providers.catalog import Catalog, CatalogEntry

TIER_HEADER = "x-groundgate-tier"


class PinRefused(GroundgateError):
    """The client's key may not use the model of the tier it pinned."""

    status_code = 403
    error_type = "permission_error"
    code = "tier_not_allowed"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    entry: CatalogEntry  # the tier's model (its own deployments and fallbacks)

    @property
    def model(self) -> str:
        return self.entry.name


class Tiers:
    """The tiers of one target (``target``: its name, for messages), cheapest first."""

    def __init__(
        self, target: str, route: RoutingConfig, catalog: Catalog, prices: PriceTable
    ) -> None:
        self.target = target
        self.route = route
        self.ordered = tuple(
            Tier(name, catalog.get(model, "chat")) for name, model in route.tiers.items()
        )
        self._by_name = {tier.name: tier for tier in self.ordered}
        self._prices = prices

    @property
    def cheapest(self) -> Tier:
        return self.ordered[0]

    @property
    def top(self) -> Tier:
        return self.ordered[-1]

    @property
    def default(self) -> Tier:
        """The tier a request gets when nothing else decides: ``default_tier``, else the
        cheapest."""
        name = self.route.default_tier
        return self._by_name[name] if name is not None else self.cheapest

    def get(self, name: str) -> Tier:
        """The tier called ``name``; a 400 naming the tiers when there is none."""
        tier = self._by_name.get(name)
        if tier is None:
            raise unknown_tier(self.target, name, self.route)
        return tier

    def above(self, tier: Tier) -> Tier | None:
        """The next tier up, None at the top."""
        at = self.ordered.index(tier)
        return self.ordered[at + 1] if at + 1 < len(self.ordered) else None

    def cost(self, tier: Tier, usage: TokenCounts, deployment: str | None = None) -> float:
        """What ``usage`` costs on ``tier``: at ``deployment``'s price (the one that served),
        else at the price of the tier's first deployment."""
        dep = deployment or (tier.entry.deployments[0].id if tier.entry.deployments else None)
        return self._prices.cost(dep, usage)


def unknown_tier(target: str, tier: str, route: RoutingConfig | None) -> InvalidRequest:
    if route is None or not route.tiers:
        return InvalidRequest(f"'{target}' has no tiers to pin.", param="model", code="no_tiers")
    return InvalidRequest(
        f"'{target}' has no tier '{tier}'. Tiers: {', '.join(route.tiers)}.",
        param="model",
        code="unknown_tier",
    )


def pinned_model(target: str, route: RoutingConfig | None, tier: str) -> str:
    """The model of the tier a client pinned on ``target``. Raises a 400 when the target has
    no such tier or does not let clients pin one."""
    if route is None or tier not in route.tiers:
        raise unknown_tier(target, tier, route)
    if not route.pin:
        raise InvalidRequest(
            f"'{target}' does not let clients pin a tier (route.pin is false).",
            param="model",
            code="pinning_disabled",
        )
    return route.tiers[tier]


@dataclass(frozen=True, slots=True)
class _Typical:
    """A typical request's size, for comparing tiers' prices: 500 tokens in, 200 out."""

    prompt_tokens: int = 500
    completion_tokens: int = 200


def cheap_price_ratio(tiers: Tiers) -> float:
    """What a typical request costs on the cheapest tier against the top one (1.0 when the
    top tier has no price)."""
    top = tiers.cost(tiers.top, _Typical())
    return tiers.cost(tiers.cheapest, _Typical()) / top if top > 0 else 1.0
