"""Schema: an answer to ``response_format`` json_object / json_schema (and tool-call arguments)
validated; an invalid one re-asked with the validation error.
"""

from __future__ import annotations

from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage


def schema_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    return None  # TODO(issue 14): being built
