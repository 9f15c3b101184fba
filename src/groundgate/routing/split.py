"""A/B splits: which variant of an app or model one request is in.

A request that names an end user or a session (the ``user`` field, else the
``x-groundgate-session`` header) is *sticky*: its variant is a pure function of the target's
name and that key, a point on [0, 1) from a keyed hash cut into the variants' weights, so the
same user lands in the same variant in every process, replica and restart (and changing one
weight moves only the users whose point crosses a boundary). A request without a key is
assigned at random, in proportion to the weights. Weights need not add up to 1.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from groundgate.config_routing import Variant

# 53 bits: as many as a float's mantissa holds, so every point is exact and below 1.
_POINT_BITS = 53


def sticky_point(target: str, key: str) -> float:
    """Where ``key`` falls on [0, 1) for ``target``: uniform over keys, the same everywhere.
    The target is part of the hash, so one user's variants in two experiments are
    independent."""
    name = target.encode("utf-8", "surrogatepass")
    # The target's length first: no (target, key) pair can hash like another's.
    digest = hashlib.blake2b(b"%d:%s" % (len(name), name), digest_size=8, person=b"gg-ab-split")
    digest.update(key.encode("utf-8", "surrogatepass"))
    return (int.from_bytes(digest.digest(), "big") >> (64 - _POINT_BITS)) / (1 << _POINT_BITS)


def variant_at(variants: Sequence[Variant], point: float) -> Variant:
    """The variant whose share of [0, 1) holds ``point`` (shares in list order, by weight)."""
    if not variants:
        raise ValueError("no variants to choose from")
    total = sum(v.weight for v in variants)
    edge = 0.0
    for variant in variants:
        edge += variant.weight / total
        if point < edge:
            return variant
    return variants[-1]  # rounding left the last edge a hair below 1


def choose_variant(
    target: str,
    variants: Sequence[Variant],
    key: str | None,
    rng: random.Random | None = None,
) -> Variant:
    """The variant of ``target`` for a request with stickiness ``key`` (None: at random)."""
    point = sticky_point(target, key) if key is not None else (rng or random).random()
    return variant_at(variants, point)
