"""A/B variant choice (routing/split.py): by weight, sticky per key, spread without one."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from groundgate.config_routing import Variant
from groundgate.routing.split import choose_variant, sticky_point, variant_at

VARIANTS = [Variant(name="a", weight=3), Variant(name="b", weight=1)]  # 75% / 25%


def test_sticky_keys_split_by_weight() -> None:
    # Weights need not add up to 1: 3 and 1 are 75% and 25%.
    counts = Counter(choose_variant("bot", VARIANTS, f"user-{i}").name for i in range(20_000))
    assert counts["a"] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_the_same_key_always_gets_the_same_variant() -> None:
    # The point is a hash of (target, key): the same in any process and after a restart
    # (the value is pinned, so a change to the hashing that would move users fails here).
    assert sticky_point("bot", "user:alice") == sticky_point("bot", "user:alice")
    assert sticky_point("bot", "user:alice") == pytest.approx(0.365639158, abs=1e-9)
    first = {k: choose_variant("bot", VARIANTS, k).name for k in map(str, range(200))}
    again = {k: choose_variant("bot", VARIANTS, k).name for k in map(str, range(200))}
    assert first == again and set(first.values()) == {"a", "b"}


def test_targets_split_independently() -> None:
    # One user's variant in one experiment says nothing of its variant in another.
    even = [Variant(name="a", weight=1), Variant(name="b", weight=1)]
    keys = [f"u{i}" for i in range(4000)]
    same = sum(choose_variant("x", even, k).name == choose_variant("y", even, k).name for k in keys)
    assert same / len(keys) == pytest.approx(0.5, abs=0.04)


def test_without_a_key_requests_spread_by_weight() -> None:
    rng = random.Random(7)
    counts = Counter(choose_variant("bot", VARIANTS, None, rng).name for _ in range(20_000))
    assert counts["a"] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_points_map_onto_weights_in_order() -> None:
    three = [Variant(name=n, weight=w) for n, w in (("a", 1), ("b", 2), ("c", 1))]
    assert [variant_at(three, p).name for p in (0.0, 0.24, 0.25, 0.74, 0.75, 0.999999)] == [
        "a",
        "a",
        "b",
        "b",
        "c",
        "c",
    ]
