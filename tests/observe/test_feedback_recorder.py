"""Every new feedback score reaches the drift monitor's feedback window; a repeat does not."""

from __future__ import annotations

from pathlib import Path

from groundgate.config import StoreConfig
from groundgate.observe.feedback import Feedback, FeedbackRecorder
from groundgate.store import open_store


async def test_a_new_score_is_passed_on_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    store = open_store(StoreConfig(path=str(tmp_path / "g.db")))
    await store.open()
    seen: list[tuple[str, float]] = []
    recorder = FeedbackRecorder(store.feedback, on_score=lambda t, s: seen.append((t, s)))
    try:
        given = {"tenant": "default", "trace_id": "t1", "target": "bot", "key_id": None}
        await recorder.give(**given, source="a", feedback=Feedback(score=0.0))
        await recorder.give(**given, source="a", feedback=Feedback(score=0.0))  # unchanged
        await recorder.give(**given, source="b", feedback=Feedback(label="unclear"))  # no score
        await recorder.give(**given, source="a", feedback=Feedback(score=1.0))
    finally:
        await store.close()
    assert seen == [("bot", 0.0), ("bot", 1.0)]
