"""One typed configuration: built-in embedded defaults, then ``groundgate.toml``, then
``GROUNDGATE_*`` environment variables (nested keys with ``__``, e.g.
``GROUNDGATE_SERVER__PORT=9000``).

Secrets never live in the file: a provider names the environment variable that holds its key
(``api_key_env``). A wrong config raises :class:`ConfigError` naming each bad key.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from groundgate.config_agent import AgentLimits, AgentSettings, AppMode
from groundgate.config_cache import (
    APP_CACHE_DEFAULT,
    MODEL_CACHE_DEFAULT,
    CacheConfig,
    CachePolicy,
)
from groundgate.config_cost import CostConfig
from groundgate.config_drift import DriftConfig
from groundgate.config_feedback import FeedbackConfig
from groundgate.config_guards import GuardsConfig, deep_merge
from groundgate.config_logging import LoggingConfig
from groundgate.config_otel import OtelConfig
from groundgate.config_prompts import PromptsConfig, parse_ref
from groundgate.config_retention import RetentionConfig
from groundgate.config_routing import (
    RoutedTarget,
    RoutingConfig,
    Variant,
    route_problems,
    variant_problems,
)
from groundgate.config_tools import McpServerConfig, ToolConfig, tool_problems
from groundgate.errors import ConfigError
from groundgate.providers.kinds import check_provider_type, default_base_url

CONFIG_ENV_VAR = "GROUNDGATE_CONFIG"
# Keys that would put a secret into the file; we refuse them and say what to use instead.
_SECRET_KEYS = {"api_key", "apikey", "key", "token", "secret", "password"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _prompt_ref(ref: str) -> str:
    parse_ref(ref)  # ValueError: pydantic names the key
    return ref


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    request_timeout_s: float = Field(60.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Host names (besides loopback and IP addresses) requests may name in ``Host``: the names
    # clients use, e.g. behind a proxy. ``"*"`` accepts any (only behind a proxy that checks).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Web origins (``https://app.example.com``) whose pages may call the gateway (CORS).
    cors_origins: list[str] = Field(default_factory=list)
    # Serve /metrics without a key (spend totals are still left out).
    public_metrics: bool = False

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        names = []
        for name in value:
            name = name.strip().lower().rstrip(".")
            if not name or "/" in name or ":" in name or "@" in name:
                raise ValueError(f"must be bare host names like 'gateway.example.com' ({name!r})")
            names.append(name)
        return names

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            origin = origin.strip().rstrip("/").lower()
            if origin != "*" and (
                not origin.startswith(("http://", "https://")) or "/" in origin.split("://")[1]
            ):
                raise ValueError(
                    f"must be origins like 'https://app.example.com' or '*' ({origin!r})"
                )
            origins.append(origin)
        return origins


class ProviderConfig(_Strict):
    type: Annotated[str, AfterValidator(check_provider_type)]  # providers/kinds.py
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_connections: int = Field(256, ge=1)
    # Non-secret static headers (e.g. an organisation id). Secrets go through api_key_env.
    headers: dict[str, str] = Field(default_factory=dict)
    # Anthropic only: the API version header.
    api_version: str = "2023-06-01"

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).lower() in _SECRET_KEYS:
                    raise ValueError(
                        f"'{key}' is not allowed in the config file: secrets come only from the "
                        "environment; set api_key_env to the name of the variable that holds it"
                    )
        return data

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _needs_url(self) -> ProviderConfig:
        if not self.base_url:
            object.__setattr__(self, "base_url", default_base_url(self.type))
        return self


class Price(_Strict):
    """USD per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class ModelConfig(_Strict):
    """A name clients may call; ``deployments`` (``provider:upstream-model``) are tried in the
    order ``routing`` gives, then the models in ``fallbacks``. A *router model* has tiers
    (``route.tiers``) and may have no deployments of its own: each request generates with the
    model of the tier its router picks."""

    deployments: list[str] = Field(default_factory=list)
    description: str = ""
    routing: Literal["ordered", "weighted", "least_in_flight", "latency"] = "ordered"
    # For routing = "weighted": one weight per deployment.
    weights: list[float] | None = None
    # Models tried, in order, when every deployment of this one failed.
    fallbacks: list[str] = Field(default_factory=list)
    # Models tried when the prompt does not fit this model's context window.
    context_window_fallbacks: list[str] = Field(default_factory=list)
    # Models tried when this model refuses on content-filter grounds.
    content_filter_fallbacks: list[str] = Field(default_factory=list)
    cache: CachePolicy = MODEL_CACHE_DEFAULT
    # The pipeline's stages (groundgate.pipeline.registry): ``stages`` replaces the default
    # list, ``extra_stages`` adds to it. Checked when the gateway starts.
    stages: list[str] | None = None
    extra_stages: list[str] = Field(default_factory=list)
    # Guards for this model, over [guards] (config_guards.py).
    guards: GuardsConfig | None = None
    # Tiers and the router that picks one (the ``route`` stage), and A/B variants
    # (config_routing.py).
    route: RoutingConfig | None = None
    variants: list[Variant] = Field(default_factory=list)

    @model_validator(mode="after")
    def _weights(self) -> ModelConfig:
        if not self.deployments and not (self.route is not None and self.route.tiers):
            raise ValueError("a model needs deployments (or route.tiers: a router model)")
        if self.weights is not None:
            if len(self.weights) != len(self.deployments):
                raise ValueError("weights needs one number per deployment")
            if any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights):
                raise ValueError("weights must be >= 0 with at least one above 0")
        if self.routing == "weighted" and self.weights is None:
            raise ValueError("routing = 'weighted' needs weights")
        return self


class ReliabilityConfig(_Strict):
    """Retries, circuit breakers and bulkheads, applied to every deployment."""

    max_attempts: int = Field(3, ge=1, le=10)  # tries per deployment, the first included
    base_delay_ms: float = Field(50, ge=0)
    max_delay_ms: float = Field(2000, ge=0)
    # A Retry-After longer than this moves on to the next deployment instead of waiting.
    max_retry_after_s: float = Field(10, ge=0)
    # A retry is started only if at least this much of the request deadline would remain.
    min_attempt_ms: float = Field(100, ge=0)
    breaker_failures: int = Field(5, ge=1)  # consecutive failures that open a breaker
    breaker_failure_rate: float = Field(0.5, gt=0, le=1)
    breaker_window_s: float = Field(30, gt=0)
    breaker_min_calls: int = Field(20, ge=1)
    breaker_cooldown_s: float = Field(10, gt=0)
    breaker_half_open_probes: int = Field(1, ge=1)
    # Bulkhead per deployment: calls in flight, calls waiting, and the longest wait.
    max_concurrent: int = Field(256, ge=1)
    max_queue: int = Field(512, ge=0)
    max_queue_wait_ms: float = Field(2000, ge=0)


class EmbedderConfig(_Strict):
    deployments: list[str] = Field(min_length=1)
    description: str = ""
    # Largest batch sent to the deployment in one call; bigger requests are split.
    max_batch: int = Field(256, ge=1)


class StoreConfig(_Strict):
    type: Literal["sqlite", "postgres"] = "sqlite"
    # SQLite: the database file.
    path: str = "data/groundgate.db"
    # PostgreSQL: the DSN may hold a password, so it comes from this environment variable.
    dsn_env: str = "GROUNDGATE_PG_DSN"
    # PostgreSQL: most connections each process keeps open.
    pool_size: int = Field(10, ge=1, le=1000)


class TracesConfig(_Strict):
    # Traces are written off the response path in batches; these bound memory and latency.
    queue_size: int = Field(50_000, ge=100)
    batch_size: int = Field(500, ge=1)
    flush_interval_ms: int = Field(50, ge=1)


class LocalModelConfig(_Strict):
    """Tuning of the embedded extractive answerer and embedder."""

    threads: int = Field(2, ge=1, le=64)
    # ONNX threads for an embedding that runs while no other call does (a lone question on an
    # idle machine); None: ``threads``, at most the CPU count. 1 saves the second model
    # session this needs (~120 MB).
    solo_threads: int | None = Field(None, ge=1, le=64)
    max_queue: int = Field(256, ge=1)
    # Measured on SQuAD 2.0 (shared data): 0.40 answers 97% of answerable questions and 11%
    # of questions about another paragraph of the same article; 0.35 answers 99% and 16%.
    min_support: float = Field(0.40, ge=-1, le=1)
    max_sentences: int = Field(3, ge=1, le=20)
    # Load the models at start-up rather than when the first request needs one.
    preload: bool = False


class KnowledgeBaseConfig(_Strict):
    """How a knowledge base is chunked, indexed and searched. ``[retrieval]`` holds the
    defaults for knowledge bases that ``[knowledge_bases.NAME]`` does not declare."""

    # The embedder (a name from [embedders]); none means keyword-only retrieval.
    embedder: str | None = "all-minilm-l6-v2"
    mode: Literal["hybrid", "keyword", "dense", "vectorless"] = "hybrid"
    chunk_target_tokens: int = Field(200, ge=16, le=8192)
    chunk_max_tokens: int = Field(256, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(32, ge=0, le=1024)
    # Candidates each retriever contributes before fusion.
    candidates: int = Field(100, ge=1, le=1000)
    # Chosen by measurement (bench/retrieval.py, SciFact train, 809 queries): weighted 0.5
    # nDCG@10 0.734 vs RRF k=60 0.718; weights 0.3/0.4/0.6/0.7 gave 0.723/0.731/0.731/0.721.
    fusion: Literal["rrf", "weighted"] = "weighted"
    rrf_k: int = Field(60, ge=1)
    # Weighted fusion: share of the dense score (the rest is keyword).
    dense_weight: float = Field(0.5, ge=0, le=1)
    rerank: Literal["none", "sentence", "cross-encoder"] = "none"
    # A folder with model.onnx and tokenizer.json of a cross-encoder the operator supplies.
    cross_encoder_path: str | None = None

    @model_validator(mode="after")
    def _sizes(self) -> KnowledgeBaseConfig:
        if self.chunk_target_tokens > self.chunk_max_tokens:
            raise ValueError("chunk_target_tokens must not exceed chunk_max_tokens")
        if self.chunk_overlap_tokens >= self.chunk_target_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_target_tokens")
        if self.mode in ("hybrid", "dense") and self.embedder is None:
            raise ValueError(f"mode '{self.mode}' needs an embedder")
        if self.rerank == "cross-encoder" and not self.cross_encoder_path:
            raise ValueError("rerank = 'cross-encoder' needs cross_encoder_path")
        return self


class AppConfig(_Strict):
    """A named grounded pipeline, called like a model: ``model: "NAME"``."""

    # None only for an agent app (``mode = "agent"``): its knowledge comes through tools.
    knowledge_base: str | None = None
    model: str = "local"
    # ``name@N``, ``name@label`` or ``name`` (config_prompts.py); the prompt files decide
    # whether it exists (checked when the gateway starts).
    prompt: Annotated[str, AfterValidator(_prompt_ref)] = "grounded-answer@1"
    top_k: int = Field(5, ge=1, le=50)
    # Most tokens of retrieved context put in the prompt.
    context_tokens: int = Field(1500, ge=64, le=200_000)
    filters: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    # The request deadline for this app (default: server.request_timeout_s).
    timeout_s: float | None = Field(None, gt=0)
    # Retrieval slower than this is abandoned and the app answers without documents.
    retrieval_timeout_ms: float = Field(1000, gt=0)
    # Sampling temperature when the client sets none: grounded answers want repeatability
    # (and only unsampled answers are cached unless cache.cache_sampled).
    temperature: float | None = Field(0.0, ge=0, le=2)
    cache: CachePolicy = APP_CACHE_DEFAULT
    # The pipeline's stages, as for models (default: the full grounded path).
    stages: list[str] | None = None
    extra_stages: list[str] = Field(default_factory=list)
    # Guards for this app, over [guards] (config_guards.py).
    guards: GuardsConfig | None = None
    # Tiers and the router that picks one (the ``route`` stage), and A/B variants
    # (config_routing.py).
    route: RoutingConfig | None = None
    variants: list[Variant] = Field(default_factory=list)
    # How the app answers: its pipeline, or the bounded tool loop; a pipeline app may fall
    # back to the loop when it abstains or an output guard rejects (config_agent.py).
    mode: AppMode = "pipeline"
    agent_fallback: bool = False
    agent: AgentLimits = AgentLimits()

    @model_validator(mode="after")
    def _mode(self) -> AppConfig:
        if self.mode == "pipeline" and self.knowledge_base is None:
            raise ValueError("knowledge_base is required (only an app in mode 'agent' may omit it)")
        if self.mode == "agent" and self.agent_fallback:
            raise ValueError("agent_fallback is for mode 'pipeline' (an agent app is the agent)")
        return self

    @property
    def uses_agent(self) -> bool:
        return self.mode == "agent" or self.agent_fallback

    # Tools this app's agent may call (config_tools.py): [tools] names, "SERVER__TOOL" for one
    # MCP tool, "mcp:SERVER" for all of a server's tools.
    tools: list[str] = Field(default_factory=list)


class AuthConfig(_Strict):
    """Who may call. ``auto``: keys are required as soon as a bootstrap admin key is set or any
    key exists; until then the gateway is open, and only on 127.0.0.1."""

    mode: Literal["auto", "required", "open"] = "auto"
    # The environment variable holding the bootstrap admin key (at least 32 characters).
    admin_key_env: str = "GROUNDGATE_ADMIN_KEY"
    # In open mode (no keys) the admin routes (keys, tenants, cache) answer 403 unless this is
    # set: without keys, any local process could otherwise mint keys or drop the cache.
    open_admin: bool = False
    # Seconds a verified key is trusted before it is read from the store again: a key revoked
    # through another process (the CLI, another worker or replica) is refused within this;
    # through this one's admin API, at once. 0: read the store on every request.
    key_cache_s: float = Field(1.0, ge=0, le=60)


class LimitsConfig(_Strict):
    """Where rate limits, concurrency slots and spend counters live."""

    backend: Literal["memory", "redis"] = "memory"
    # The environment variable holding the Redis URL (it may contain a password).
    redis_url_env: str = "GROUNDGATE_REDIS_URL"
    # With limits exceeded, wait up to this long for room instead of failing at once.
    queue_ms: float = Field(0, ge=0, le=10_000)
    # If the limits backend is down: serve anyway (open) or refuse with 503 (closed).
    fail_open: bool = False
    # Caps on any request (per-key caps may be lower).
    max_messages: int = Field(1000, ge=1)
    max_input_tokens: int = Field(1_000_000, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GROUNDGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()
    store: StoreConfig = StoreConfig()
    traces: TracesConfig = TracesConfig()
    retention: RetentionConfig = RetentionConfig()
    local: LocalModelConfig = LocalModelConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    embedders: dict[str, EmbedderConfig] = Field(default_factory=dict)
    # Keyed by deployment, "provider:upstream-model".
    prices: dict[str, Price] = Field(default_factory=dict)
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    reliability: ReliabilityConfig = ReliabilityConfig()
    retrieval: KnowledgeBaseConfig = KnowledgeBaseConfig()
    knowledge_bases: dict[str, KnowledgeBaseConfig] = Field(default_factory=dict)
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    cache: CacheConfig = CacheConfig()
    # Every app's and model's guards, unless its own ``guards`` table overrides them.
    guards: GuardsConfig = GuardsConfig()
    drift: DriftConfig = DriftConfig()  # config_drift.py
    feedback: FeedbackConfig = FeedbackConfig()  # config_feedback.py
    # The monthly fixed cost of running the gateway, for ``groundgate report cost``.
    cost: CostConfig = CostConfig()
    otel: OtelConfig = OtelConfig()
    agent: AgentSettings = AgentSettings()  # config_agent.py
    # Tools agents may call and the MCP servers that provide more (config_tools.py).
    tools: dict[str, ToolConfig] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    prompts: PromptsConfig = PromptsConfig()  # config_prompts.py

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; the file (passed as init kwargs) beats the defaults.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems: list[str] = []
        for section, table in (("models", self.models), ("embedders", self.embedders)):
            for name, entry in table.items():
                for i, dep in enumerate(entry.deployments):
                    problem = _check_deployment(dep, self.providers)
                    if problem:
                        problems.append(f"{section}.{name}.deployments[{i}]: {problem}")
        for dep in self.prices:
            problem = _check_deployment(dep, self.providers)
            if problem:
                problems.append(f"prices.{dep}: {problem}")
        names = [*self.models, *self.embedders, *self.apps]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            problems.append(f"models/embedders/apps: names used twice: {', '.join(clash)}")
        kb_configs = {"retrieval": self.retrieval} | {
            f"knowledge_bases.{name}": kb for name, kb in self.knowledge_bases.items()
        }
        for where, kb in kb_configs.items():
            if kb.embedder is not None and kb.embedder not in self.embedders:
                problems.append(f"{where}.embedder: unknown embedder {kb.embedder!r}")
        for name, app in self.apps.items():
            if app.model not in self.models:
                problems.append(f"apps.{name}.model: unknown model {app.model!r}")
        for name, model in self.models.items():
            for key in ("fallbacks", "context_window_fallbacks", "content_filter_fallbacks"):
                for target in getattr(model, key):
                    if target not in self.models or target == name:
                        problems.append(f"models.{name}.{key}: {target!r} is not another model")
        # Apps and models that may route between tiers or split their traffic, and the chat
        # models (whether each has deployments of its own).
        routed = [
            RoutedTarget(f"apps.{name}", app.route, app.variants, is_app=True)
            for name, app in self.apps.items()
        ] + [
            RoutedTarget(f"models.{name}", model.route, model.variants, is_app=False)
            for name, model in self.models.items()
        ]
        generators = {name: bool(model.deployments) for name, model in self.models.items()}
        problems += route_problems(routed, generators)
        policies = [app.cache for app in self.apps.values()]
        policies += [model.cache for model in self.models.values()]
        if (
            self.cache.enabled
            and any(policy.semantic for policy in policies)
            and self.cache.embedder not in self.embedders
        ):
            problems.append(
                f"cache.embedder: unknown embedder {self.cache.embedder!r} (the semantic "
                "cache of an app or model needs one)"
            )
        problems += variant_problems(routed, generators)
        known_kbs = set(self.knowledge_bases) | {
            app.knowledge_base for app in self.apps.values() if app.knowledge_base is not None
        }
        problems += tool_problems(
            self.tools,
            self.mcp_servers,
            {name: app.tools for name, app in self.apps.items()},
            known_kbs,
            apps_without_kb={n for n, app in self.apps.items() if app.knowledge_base is None},
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def kb_config(self, name: str) -> KnowledgeBaseConfig:
        return self.knowledge_bases.get(name, self.retrieval)


def _check_deployment(dep: str, providers: dict[str, ProviderConfig]) -> str | None:
    provider, sep, model = dep.partition(":")
    if not sep or not provider or not model:
        return f"{dep!r} must look like 'provider:upstream-model'"
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none"
        return f"unknown provider {provider!r} (declared: {known})"
    return None


def split_deployment(dep: str) -> tuple[str, str]:
    provider, _, model = dep.partition(":")
    return provider, model


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=source) from exc


def embedded_defaults() -> dict[str, Any]:
    text = resources.files("groundgate").joinpath("defaults.toml").read_text("utf-8")
    return _read_toml(text, "built-in defaults")


def resolve_config_path(path: str | Path | None) -> Path | None:
    """The explicit path, else ``$GROUNDGATE_CONFIG``, else none (embedded defaults only)."""
    if path is not None:
        return Path(path)
    from_env = os.environ.get(CONFIG_ENV_VAR)
    return Path(from_env) if from_env else None


def load_settings(path: str | Path | None = None) -> Settings:
    """Defaults, then the file (if any), then the environment. Raises :class:`ConfigError`."""
    config_path = resolve_config_path(path)
    data = embedded_defaults()
    source = "built-in defaults"
    if config_path is not None:
        source = str(config_path)
        try:
            text = config_path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError([f"cannot read config file: {exc.strerror}"], source=source) from exc
        data = deep_merge(data, _in_folder(_read_toml(text, source), config_path.parent))
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc), source=source) from None


def _in_folder(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The file's relative paths that mean "beside this file" made absolute."""
    prompts = data.get("prompts")
    if isinstance(prompts, dict) and isinstance(prompts.get("dir"), str):
        where = Path(prompts["dir"]).expanduser()
        if not where.is_absolute():
            data["prompts"] = {**prompts, "dir": str(folder.absolute() / where)}
    return data


def _describe(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{loc}: {msg}" if loc else msg)
    return problems
