"""Split: A/B variants of an app or model (``variants``), one chosen per request, sticky per end
user or session when the client names one; the variant may change the model, pin a tier or swap
the prompt.
"""

from __future__ import annotations

from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage


def split_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its config leaves it nothing to do."""
    return None  # TODO(issue 15): being built
