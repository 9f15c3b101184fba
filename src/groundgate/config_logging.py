"""The ``[logging]`` section: how much the gateway logs and in which form. Kept beside
``config.py``, which imports it, as ``config_cache.py`` is.

Every line goes to stderr, scrubbed of secrets (observe/redact.py) whatever the form.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Level = Literal["debug", "info", "warning", "error"]


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: ``server.log_level`` (where the level lived before this section).
    level: Level | None = None
    # "json": one JSON object per line, for a log pipeline; "text": for people.
    format: Literal["text", "json"] = "text"
    # One line per HTTP request at info: method, route, status, duration, and the model,
    # tenant and trace (and OTel span) ids of a request that ran the pipeline.
    requests: bool = True

    def level_or(self, server_level: Level) -> Level:
        """The level in force: this section's, else ``server.log_level``."""
        return self.level or server_level
