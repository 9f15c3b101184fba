"""Review: answers put in the human review queue by the rules of ``guards.review``, held or
audited.
"""

from __future__ import annotations

from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage


def review_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    return None  # TODO(issue 14): being built
