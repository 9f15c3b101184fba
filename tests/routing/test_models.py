"""The shipped learned router and answer verifier: their API, files and calibration."""

from __future__ import annotations

import time

import numpy as np
import pytest

from groundgate.routing.features import FEATURE_NAMES
from groundgate.routing.learned import LearnedRouter, load_router, shipped_router
from groundgate.routing.verifier import AnswerVerifier, load_verifier, shipped_verifier

PROMPT = "Janet has 3 boxes of 12 eggs and uses 5 eggs. How many eggs are left?"
GOOD = "She has 3 * 12 = <<3*12=36>>36 eggs.\nShe has 36 - 5 = <<36-5=31>>31 left.\n#### 31"
HARD = (
    "Let G be a finite group and H a subgroup of index 2. Which statement is true?\n"
    "A. H is normal in G\nB. H is abelian\nC. G is cyclic\nD. H is trivial\nAnswer:"
)
BAD = (
    "She has 3 * 12 = <<3*12=36>>36 eggs. However, assuming some break, it is approximately "
    "36 - 5 = <<36-5=30>>30.5 which we can round"
)


def test_shipped_router_reads_the_shared_embedding_and_calibrates_by_share() -> None:
    router = shipped_router()
    assert router is shipped_router()  # read once
    assert router.embedder == "all-MiniLM-L6-v2-int8" and router.dimension == 384
    assert router.meta["holdout"] == 0.2 and router.meta["holdout_rows"] > 2000
    assert "Apache-2.0" in router.meta["license"]
    from groundgate.guards.injection import embedding_text
    from groundgate.providers.local.models import process_models

    embed = process_models().embedder(router.embedder).embed
    vectors = embed([embedding_text(PROMPT), embedding_text(HARD)])
    easy, hard = (
        router.p_cheap_correct(t, v) for t, v in zip((PROMPT, HARD), vectors, strict=True)
    )
    assert 0 < hard < easy < 1
    with pytest.raises(ValueError, match="384"):
        router.p_cheap_correct(PROMPT, np.zeros(10))
    shares = [router.threshold_for_strong_share(s) for s in (0.0, 0.1, 0.5, 0.9, 1.0)]
    assert shares[0] == 0.0 and shares[-1] == 1.0 and shares == sorted(shares)
    assert shares[2] == pytest.approx(router.quantiles[50])
    assert 0 < router.threshold < 1


def test_router_file_round_trips_and_refuses_other_features(tmp_path: object) -> None:
    router = shipped_router()
    again = LearnedRouter.from_json(router.to_json())
    assert again.to_json() == router.to_json()
    data = router.to_json()
    data["feature_names"] = [*FEATURE_NAMES[:-1], "something_else"]
    with pytest.raises(ValueError, match="features"):
        LearnedRouter.from_json(data)
    with pytest.raises(ValueError, match="not a router file"):
        LearnedRouter.from_json({**router.to_json(), "format": "groundgate.verifier/1"})
    from pathlib import Path

    path = Path(str(tmp_path)) / "r.json"
    path.write_text(__import__("json").dumps(router.to_json()))
    assert load_router(path).threshold == router.threshold


def test_shipped_verifier_prefers_a_clean_answer_and_runs_in_microseconds(tmp_path: object) -> None:
    verifier = shipped_verifier()
    good = verifier.p_correct(PROMPT, GOOD)
    bad = verifier.p_correct(PROMPT, BAD)
    assert 0 < bad < good < 1
    assert verifier.p_correct(PROMPT, GOOD, "length") < good  # a cut-off answer counts against
    assert 0 < verifier.threshold < 1 and verifier.meta["holdout_rows"] > 150
    started = time.perf_counter()
    for _ in range(200):
        verifier.p_correct(PROMPT, GOOD)
    assert (time.perf_counter() - started) / 200 < 0.005  # generous: ~0.1 ms on a laptop core
    assert AnswerVerifier.from_json(verifier.to_json()).to_json() == verifier.to_json()
    from pathlib import Path

    path = Path(str(tmp_path)) / "v.json"
    path.write_text(__import__("json").dumps(verifier.to_json()))
    assert load_verifier(path).p_correct(PROMPT, GOOD) == good
