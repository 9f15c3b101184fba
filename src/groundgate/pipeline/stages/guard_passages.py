"""Guard passages: retrieved passages scored for indirect injection before the prompt is built; a
passage that reads like instructions is fenced or dropped, per the app's ``guards.passages``.
"""

from __future__ import annotations

from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage


def guard_passages_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    return None  # TODO(issue 14): being built
