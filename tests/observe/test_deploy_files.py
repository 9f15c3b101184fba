"""The shipped Grafana dashboard and Prometheus alert rules (deploy/) draw and watch metrics
the gateway really serves: every metric name in their queries is checked against a live
/metrics scrape, their PromQL is parsed by ``promtool``, and the alerts are unit-tested with
``promtool test rules`` (deploy/prometheus/alerts_test.yml)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import services_required
from tests.servers import GatewayProcess

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "groundgate.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
METRIC_NAME = re.compile(r"\bgroundgate_[a-z0-9_]+\b")
_HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def promtool() -> str:
    """Debian's prometheus package ships it (.ci/run installs it)."""
    path = shutil.which("promtool")
    if path is None:
        if services_required():
            pytest.fail("promtool is required (apt-get install prometheus)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def served_names(text: str) -> set[str]:
    """Every series name /metrics can serve, from its TYPE lines (a labelled metric that has
    counted nothing yet has no samples, but is declared)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in _HISTOGRAM_SERIES)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query: panels' targets and the template variables."""
    board = dashboard()
    queries = [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", ())
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append((f"${variable['name']}", variable["query"]["query"]))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text("utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_dashboard_is_a_grafana_model_on_a_prometheus_variable() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    drawn = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert len(drawn) >= 20
    for panel in drawn:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
    titles = " ".join(panel["title"].lower() for panel in drawn)
    # The seeds' list: each has its panel.
    for topic in (
        "p50 / p95 / p99",
        "time to first token",
        "tokens",
        "cost per request",
        "cost per model",
        "cache hit rate",
        "error rate by model and endpoint",
        "guard decisions",
        "route decisions",
        "upstream errors",
        "circuit breakers",
        "queue depths",
    ):
        assert topic in titles, topic


def test_every_metric_the_dashboard_and_alerts_query_is_served(gateway: GatewayProcess) -> None:
    text = httpx.get(gateway.url + "/metrics", timeout=20).text
    served = served_names(text)
    assert "groundgate_requests_total" in served
    queried = [(title, name) for title, q in dashboard_queries() for name in METRIC_NAME.findall(q)]
    queried += [
        (rule["alert"], name)
        for rule in alert_rules()
        for name in METRIC_NAME.findall(rule["expr"])
    ]
    assert len({name for _, name in queried}) >= 20
    missing = [(where, name) for where, name in queried if name not in served]
    assert not missing, missing


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    # promtool parses rule expressions: each query becomes a recording rule, with the
    # dashboard's variables replaced as Grafana would.
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": query.replace("$__rate_interval", "5m")
            .replace("$model", ".*")
            .replace("$endpoint", ".*"),
        }
        for i, (_, query) in enumerate(dashboard_queries())
        if not query.startswith("label_values(")
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), "utf-8")
    checked = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("page", "warn", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    watched = " ".join(rule["expr"] for rule in rules)
    # The list: error rate, latency p99, breaker open, cost spike, trace backlog,
    # exporter (and store) drops.
    for metric in (
        'groundgate_requests_total{code=~"5.."}',
        "histogram_quantile(0.99",
        "groundgate_breaker_state",
        "groundgate_cost_usd_total",
        "groundgate_trace_backlog",
        "groundgate_traces_dropped_total",
    ):
        assert metric in watched, metric


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    tool = promtool()
    # Every rule file shipped (other modules' rule files beside alerts.yml included).
    rule_files = [p for p in sorted(ALERTS.parent.glob("*.yml")) if not p.stem.endswith("_test")]
    checked = subprocess.run(
        [tool, "check", "rules", *map(str, rule_files)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [tool, "test", "rules", "alerts_test.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
