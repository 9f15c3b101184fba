"""Cascade: the cheapest tier answers first; its answer is scored and, when the score is low, the
next tier is asked instead (the client only ever sees the answer that is kept).
"""

from __future__ import annotations

from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage


def cascade_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its config leaves it nothing to do."""
    return None  # TODO(issue 15): being built
