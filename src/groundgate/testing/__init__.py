"""Test doubles that run for real: a fake LLM upstream over real sockets.

``FakeUpstream`` lives in ``fake_server`` (and is re-exported by ``fake_upstream``, whose
``python -m`` entry point serves it from the command line).
"""

from groundgate.testing.fake_server import FakeUpstream
from groundgate.testing.fake_state import BEHAVIOR_HEADER, Behavior, RecordedRequest

__all__ = ["BEHAVIOR_HEADER", "Behavior", "FakeUpstream", "RecordedRequest"]
