"""Guard in: the client's messages checked before anything else sees them (the cache, retrieval,
the provider): injection, secrets, PII, topics, size and language (``groundgate.guards``).
"""

from __future__ import annotations

from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage


def guard_in_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    return None  # TODO(issue 14): being built
