"""Metric labels stay bounded whatever the traffic: names the configuration does not know
are folded before they become labels, and every metric's label sets are capped besides
(observe/metric_labels.py), with an ``other`` set that keeps the totals right."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from groundgate.observe.metrics import Metrics
from groundgate.observe.trace import Attempt, Trace

SECRET = "sk-live-" + "q" * 30


def label_sets(text: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Each sample name's distinct label sets (a histogram's ``le`` left out)."""
    sets: dict[str, set[tuple[tuple[str, str], ...]]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            sets[sample.name].add(labels)
    return sets


def flooded_trace(i: int) -> Trace:
    """A trace whose every client-fed name is new: model, app, deployment, tier."""
    trace = Trace(
        id=f"{i:032x}",
        tenant=f"tenant-{i}",
        endpoint="chat.completions",
        model=f"model-{i}",
        stream=True,
        source="model",
        deployment=f"prov:dep-{i}",
        prompt_tokens=3,
        completion_tokens=5,
        cost_usd=0.001,
        latency_ms=12.0,
        ttft_ms=4.0,
    )
    trace.attempts.append(Attempt(f"prov:dep-{i}", "error", error_class="timeout"))
    trace.attrs["app"] = f"app-{i}"
    trace.attrs["route"] = {"tier": f"tier-{i}", "router": "rules"}
    return trace


def test_a_flood_of_names_keeps_every_metric_within_its_cap() -> None:
    # A configuration that "knows" every name: only the cap stands between the flood and
    # one series per request.
    metrics = Metrics(lambda _: True, max_label_sets=20)
    flood = 3000
    for i in range(flood):
        metrics.observe(flooded_trace(i))
        metrics.cache_lookup(f"target-{i}", "miss")
        metrics.breaker_changed(f"prov:dep-{i}", "closed", "open")
    text = metrics.render().decode()
    sets = label_sets(text)
    for name in (
        "groundgate_requests_total",
        "groundgate_request_duration_seconds_bucket",
        "groundgate_time_to_first_token_seconds_count",
        "groundgate_upstream_errors_total",
        "groundgate_tokens_total",
        "groundgate_cost_usd_total",
        "groundgate_route_decisions_total",
        "groundgate_cache_lookups_total",
        "groundgate_breaker_state",
    ):
        assert 1 < len(sets[name]) <= 21, (name, len(sets[name]))
    # The overflow set carries what did not fit, so totals stay right.
    requests = {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        if f.name == "groundgate_requests"
        for s in f.samples
        if s.name == "groundgate_requests_total"
    }
    assert sum(requests.values()) == flood
    overflow = [labels for labels in requests if dict(labels)["model"] == "other"]
    assert overflow and requests[overflow[0]] == flood - 20
    assert len(text) < 200_000  # a flood 150x larger than the cap leaves a small scrape


def test_names_the_configuration_does_not_know_are_not_labels() -> None:
    metrics = Metrics(lambda name: name in {"gpt", "support-bot"})
    for model, app in ((SECRET, None), ("gpt", "kb:private-kb-name"), ("gpt", "support-bot")):
        trace = Trace(id="0" * 32, tenant="acme-corp", endpoint="chat.completions", model=model)
        if app:
            trace.attrs["app"] = app
        metrics.observe(trace)
    metrics.cache_lookup("not-configured-target", "miss")
    text = metrics.render().decode()
    for leaked in ("sk-live", "private-kb-name", "acme-corp", "not-configured-target"):
        assert leaked not in text
    apps = {labels for labels in label_sets(text)["groundgate_requests_total"]}
    seen = {(dict(labels)["model"], dict(labels)["app"]) for labels in apps}
    assert seen == {("unknown", "none"), ("gpt", "adhoc"), ("gpt", "support-bot")}
