"""The ``[feedback]`` section: how fast a key may give feedback (``POST /v1/feedback``), and
what a trace keeps of the request's text so that feedback can become an eval case
(``groundgate datasets export --feedback``). Kept beside ``config.py``, which imports it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FeedbackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Feedback writes per minute per key (per tenant for the admin key and open mode): far
    # above what a person clicking thumbs sends, low enough that a runaway client cannot fill
    # the store.
    requests_per_minute: int = Field(600, ge=1)
    # What a trace keeps of the text: "grounded" (the default) the answer of apps, whose
    # question it keeps anyway (``attrs.query``); "all" also a plain model's question and
    # answer; "none" neither (feedback on those traces exports nothing). Secrets are scrubbed
    # from traces as always, and the guards' redaction has already applied.
    keep_text: Literal["none", "grounded", "all"] = "grounded"
    # A kept question or answer longer than this is cut (characters).
    max_text_chars: int = Field(8000, ge=100, le=1_000_000)
