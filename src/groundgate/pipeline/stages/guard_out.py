"""Guard out: the answer checked before the client sees it: PII and secret leaks, deny patterns,
groundedness (``groundgate.guards``).
"""

from __future__ import annotations

from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage


def guard_out_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    return None  # TODO(issue 14): being built
