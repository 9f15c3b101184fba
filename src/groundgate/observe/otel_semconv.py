"""The OpenTelemetry GenAI semantic conventions Groundgate emits, pinned to released versions.

The GenAI conventions are in Development status and moving. Groundgate pins v1.41.0 (the last
release of the main semantic-conventions repository) and follows their transition plan for
``OTEL_SEMCONV_STABILITY_OPT_IN``: with ``gen_ai_latest_experimental`` in it, the latest
version this release supports (v1.41.0) is emitted and the old one is not; without it, the
v1.36.0 baseline. What differs between the two, for what Groundgate emits:

* the provider: ``gen_ai.system`` (v1.36.0), ``gen_ai.provider.name`` (v1.41.0);
* streamed requests: ``gen_ai.request.stream`` and ``gen_ai.response.time_to_first_chunk`` on
  the span (v1.41.0 only);
* time to first token: the ``gen_ai.server.time_to_first_token`` histogram (v1.36.0, its only
  one), ``gen_ai.client.operation.time_to_first_chunk`` (v1.41.0);
* the schema URL: ``https://opentelemetry.io/schemas/1.36.0`` or ``.../1.41.0``.

Everything else (span names and kinds, ``gen_ai.operation.name``, request and response model,
token usage, finish reasons, ``error.type``, ``server.address``, the client token-usage and
operation-duration histograms and their bucket boundaries) is the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass

# The histograms' explicit bucket boundaries, as the conventions ask (gen-ai-metrics.md).
TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
SECONDS_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)

OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
# The client's request parameters, by the OpenAI field they come from.
REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}
# Groundgate's provider types (providers/kinds.py) as the conventions' well-known provider
# names; an in-process model is Groundgate's own ("a custom value MAY be used").
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "local": "groundgate"}
GATEWAY_PROVIDER = "groundgate"  # a request nothing upstream answered (a cache hit, a refusal)


@dataclass(frozen=True, slots=True)
class Semconv:
    version: str
    provider: str  # the provider attribute's name
    ttft_metric: str
    ttft_description: str
    streaming_attributes: bool  # gen_ai.request.stream, gen_ai.response.time_to_first_chunk

    @property
    def schema_url(self) -> str:
        return f"https://opentelemetry.io/schemas/{self.version}"


V1_41 = Semconv(
    "1.41.0",
    "gen_ai.provider.name",
    "gen_ai.client.operation.time_to_first_chunk",
    "Time to receive the first chunk of a streamed response.",
    streaming_attributes=True,
)
V1_36 = Semconv(
    "1.36.0",
    "gen_ai.system",
    "gen_ai.server.time_to_first_token",
    "Time to generate first token for successful responses.",
    streaming_attributes=False,
)


def semconv(latest: bool) -> Semconv:
    return V1_41 if latest else V1_36
