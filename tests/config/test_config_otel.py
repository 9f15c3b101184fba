"""[otel]: off unless configured; the standard OTEL_* variables fill what the file leaves out."""

from __future__ import annotations

import pytest

from groundgate.config_otel import OtelConfig


def test_off_by_default_and_on_by_an_endpoint() -> None:
    assert not OtelConfig().is_enabled({})
    assert OtelConfig(endpoint="http://collector:4318").is_enabled({})
    assert OtelConfig().is_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert OtelConfig().is_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"})
    assert not OtelConfig(enabled=False).is_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"})
    assert not OtelConfig(enabled=True).is_enabled({"OTEL_SDK_DISABLED": "true"})


def test_the_file_wins_over_the_environment() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http,gen_ai_latest_experimental",
    }
    assert OtelConfig().resolved_protocol(env) == "grpc"
    assert OtelConfig(protocol="http/protobuf").resolved_protocol(env) == "http/protobuf"
    assert OtelConfig().resolved_protocol({}) == "http/protobuf"
    assert OtelConfig().resolved_service_name(env) == "from-env"
    assert OtelConfig(service_name="file").resolved_service_name(env) == "file"
    assert OtelConfig().resolved_service_name({}) == "groundgate"
    assert OtelConfig().latest_semconv(env)
    assert not OtelConfig().latest_semconv({"OTEL_SEMCONV_STABILITY_OPT_IN": "http"})
    assert not OtelConfig(semconv_stability_opt_in="").latest_semconv(env)


def test_an_endpoint_must_be_a_url() -> None:
    with pytest.raises(ValueError, match="http"):
        OtelConfig(endpoint="collector:4318")
