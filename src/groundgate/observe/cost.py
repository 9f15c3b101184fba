"""Cost of a call from the price table in config (USD per million tokens, per deployment)."""

from __future__ import annotations

from typing import Protocol

from groundgate.config import Price


class TokenCounts(Protocol):
    """What a price applies to (``providers.base.Usage`` is one)."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


class PriceTable:
    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = dict(prices)

    def cost(self, deployment: str | None, usage: TokenCounts) -> float:
        price = self._prices.get(deployment) if deployment else None
        if price is None:
            return 0.0
        return (
            usage.prompt_tokens * price.input_per_mtok
            + usage.completion_tokens * price.output_per_mtok
        ) / 1_000_000
