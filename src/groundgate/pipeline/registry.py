"""The stages config may name, and the pipelines config declares.

Adding a stage is one module in ``stages/`` and one line in ``REGISTRY``. Each app and model
runs a pipeline built from its config: ``stages`` replaces the default list, ``extra_stages``
adds to it (a stage that runs before the answer is generated goes just before ``generate``,
one that looks at the answer after it). Every pipeline is framed by ``record`` (the trace) and
``admit`` (limits and budgets), which are always on and never listed. A list that names an
unknown stage, names one twice, leaves out ``generate`` or puts a stage on the wrong side of it
(or before a stage it needs) is a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from groundgate.cache.setup import cache_policy, caches
from groundgate.config import AppConfig
from groundgate.errors import ConfigError
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.runner import Pipeline
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage
from groundgate.pipeline.stages.admit import Admit
from groundgate.pipeline.stages.agent import agent_fallback_stage, agent_stage
from groundgate.pipeline.stages.cache import Cache
from groundgate.pipeline.stages.cascade import cascade_stage
from groundgate.pipeline.stages.cite import Cite
from groundgate.pipeline.stages.generate import Generate
from groundgate.pipeline.stages.guard_in import guard_in_stage
from groundgate.pipeline.stages.guard_out import guard_out_stage
from groundgate.pipeline.stages.guard_passages import guard_passages_stage
from groundgate.pipeline.stages.prompt import Prompt, PromptVersion
from groundgate.pipeline.stages.record import Record
from groundgate.pipeline.stages.retrieve import Retrieve
from groundgate.pipeline.stages.review import review_stage
from groundgate.pipeline.stages.route import route_stage
from groundgate.pipeline.stages.schema import schema_stage
from groundgate.pipeline.stages.split import split_stage
from groundgate.pipeline.stages.transcript import transcript_stage

# A factory may decline (None): the stage has nothing to do for this target, so it is left
# out, span and all (the cache for a model whose config does not cache).
Factory = Callable[[Services, Target], Stage | None]
# Where a stage runs relative to ``generate``: before it, or on the answer after it.
Phase = Literal["before", "generate", "after"]


@dataclass(frozen=True, slots=True)
class StageSpec:
    factory: Factory
    phase: Phase
    needs: tuple[str, ...] = ()  # stages that must come earlier in the list
    grounded: bool = False  # only for apps (it works on retrieved documents)


def _cache(services: Services, target: Target) -> Stage | None:
    cache = services.cache
    if cache is None:
        return None
    settings = services.settings
    if target.app is None and not (target.model is not None and caches(target.model.cache)):
        return None

    return Cache(cache, lambda ctx: cache_policy(settings, ctx.app, ctx.model))


REGISTRY: dict[str, StageSpec] = {
    "split": StageSpec(split_stage, "before"),
    "route": StageSpec(route_stage, "before"),
    "guard_in": StageSpec(guard_in_stage, "before"),
    "cache": StageSpec(_cache, "before"),
    "retrieve": StageSpec(lambda s, t: Retrieve(s.retriever, s.settings), "before", grounded=True),
    "guard_passages": StageSpec(guard_passages_stage, "before", ("retrieve",), grounded=True),
    "prompt": StageSpec(lambda s, t: Prompt(s.prompts), "before", ("retrieve",), grounded=True),
    "generate": StageSpec(lambda s, t: Generate(s.chain, s.prices), "generate", ("route",)),
    "review": StageSpec(review_stage, "after"),
    "guard_out": StageSpec(guard_out_stage, "after"),
    "schema": StageSpec(schema_stage, "after"),
    "cascade": StageSpec(cascade_stage, "after", ("route",)),
    "cite": StageSpec(lambda s, t: Cite(), "after", ("prompt",), grounded=True),
    # The bounded tool loop in generate's place (an app in mode "agent"), and the loop as the
    # fallback of a pipeline app (first: its transform sees the answer after every guard).
    "agent": StageSpec(agent_stage, "generate", ("route",), grounded=True),
    "agent_fallback": StageSpec(agent_fallback_stage, "before", grounded=True),
}
GENERATORS = ("generate", "agent")  # a pipeline has exactly one
FRAMING = ("record", "admit")  # always first, never listed

# The default paths: plain models skip retrieval; apps walk the full path. The guard, schema
# and review stages decline (are left out, at no cost) unless the target's guards turn them
# on, and so do ``split`` and ``cascade`` unless the target has variants or a cascade. After
# ``generate``, transforms apply from the end of the list inwards: the answer meets ``cascade``
# first (which may replace it with a higher tier's), then ``schema``, ``guard_out`` and
# ``review`` (which queues what the client would get).
MODEL_STAGES = (
    "split",
    "guard_in",
    "route",
    "cache",
    "generate",
    "review",
    "guard_out",
    "schema",
    "cascade",
)
APP_STAGES = (
    "split",
    "guard_in",
    "route",
    "cache",
    "retrieve",
    "guard_passages",
    "prompt",
    "generate",
    "review",
    "guard_out",
    "schema",
    "cascade",
    "cite",
)
# An agent app: the loop replaces retrieve, guard_passages, prompt, generate and cite (its
# knowledge comes through tools, whose results the loop guards itself, and its answer cites
# no numbered sources); the cache is left out (a run acts, and its answer depends on what the
# tools return now); cascade is left out (it re-generates with a higher tier, not a run).
# The input and output guards, review and the schema check apply as to any answer.
AGENT_STAGES = ("split", "guard_in", "route", "agent", "review", "guard_out", "schema")


def default_stages(app: AppConfig) -> tuple[str, ...]:
    """An app's stages unless it lists its own: the agent's, or the grounded path (with the
    agent as its fallback when ``agent_fallback``)."""
    if app.mode == "agent":
        return AGENT_STAGES
    return ("agent_fallback", *APP_STAGES) if app.agent_fallback else APP_STAGES


def register(name: str, spec: StageSpec) -> None:
    """Make a stage nameable in config (for stages that live outside this package)."""
    if name in REGISTRY or name in FRAMING:
        raise ValueError(f"a stage named {name!r} is already registered")
    REGISTRY[name] = spec


def declared_stages(
    key: str,
    stages: Sequence[str] | None,
    extra: Sequence[str],
    *,
    grounded: bool,
    default: Sequence[str] | None = None,
) -> list[str]:
    """The stage names of one app or model (``key``: its config table, e.g. ``apps.bot``),
    checked. Raises :class:`ConfigError` naming the offending key."""
    if default is None:
        default = APP_STAGES if grounded else MODEL_STAGES
    names = list(stages) if stages is not None else list(default)
    problems = [
        problem
        for where, listed in ((f"{key}.stages", stages or []), (f"{key}.extra_stages", extra))
        for i, name in enumerate(listed)
        if (problem := _unknown(where, i, name, grounded)) is not None
    ]
    if problems:
        raise ConfigError(problems)
    for name in extra:
        generator = next((g for g in GENERATORS if g in names), None)
        if REGISTRY[name].phase == "before" and generator is not None:
            names.insert(names.index(generator), name)
        else:
            names.append(name)
    problems = _order_problems(
        f"{key}.stages" if stages is not None else f"{key}.extra_stages", names
    )
    if problems:
        raise ConfigError(problems)
    return names


def _unknown(where: str, i: int, name: str, grounded: bool) -> str | None:
    if name in FRAMING:
        return f"{where}[{i}]: {name!r} is always on (first); leave it out"
    spec = REGISTRY.get(name)
    if spec is None:
        return f"{where}[{i}]: unknown stage {name!r} (known: {', '.join(sorted(REGISTRY))})"
    if spec.grounded and not grounded:
        return f"{where}[{i}]: stage {name!r} needs an app (it works on retrieved documents)"
    return None


def _order_problems(where: str, names: list[str]) -> list[str]:
    problems: list[str] = []
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"{where}: stages listed twice: {', '.join(twice)}")
    generators = [n for n in names if n in GENERATORS]
    if len(generators) != 1:
        one = "a pipeline needs the 'generate' stage (or 'agent', and only one of them)"
        return [*problems, f"{where}: {one}"]
    generator = generators[0]
    at = names.index(generator)
    if "agent_fallback" in names and names[0] != "agent_fallback":
        problems.append(f"{where}: 'agent_fallback' must come first")
    for i, name in enumerate(names):
        spec = REGISTRY[name]
        if spec.phase == "before" and i > at:
            problems.append(f"{where}: {name!r} must come before {generator!r}")
        if spec.phase == "after" and i < at:
            problems.append(f"{where}: {name!r} must come after {generator!r}")
        for needed in spec.needs:
            if needed not in names[:i]:
                problems.append(f"{where}: {name!r} needs {needed!r} before it")
    return problems


def build_pipeline(services: Services, target: Target, names: Sequence[str]) -> Pipeline:
    stages: list[Stage] = [
        Record(services.metrics, services.traces, services.drift, services.otel),
        Admit(services.settings, services.admission),
    ]
    # Not a nameable stage: what traces keep of the text is ``feedback.keep_text``'s call.
    transcript = transcript_stage(services, target)
    if transcript is not None:
        stages.append(transcript)
    if target.app is not None:
        # Before anything keys by the prompt (the cache) or swaps it (a split's variant).
        stages.append(PromptVersion(services.prompts))
    for name in names:
        stage = REGISTRY[name].factory(services, target)
        if stage is not None:
            stages.append(stage)
    return Pipeline(stages)


def build_pipelines(services: Services) -> Pipelines:
    settings = services.settings
    apps = {
        name: build_pipeline(
            services,
            Target(name, app=app),
            declared_stages(
                f"apps.{name}",
                app.stages,
                app.extra_stages,
                grounded=True,
                default=default_stages(app),
            ),
        )
        for name, app in settings.apps.items()
    }
    models = {
        name: build_pipeline(
            services,
            Target(name, model=model),
            declared_stages(f"models.{name}", model.stages, model.extra_stages, grounded=False),
        )
        for name, model in settings.models.items()
    }
    adhoc = build_pipeline(services, Target("kb", app=AppConfig(knowledge_base="")), APP_STAGES)
    unknown = build_pipeline(services, Target(""), MODEL_STAGES)
    return Pipelines(apps, models, adhoc, unknown)


@dataclass(frozen=True, slots=True)
class Pipelines:
    apps: dict[str, Pipeline]
    models: dict[str, Pipeline]
    adhoc: Pipeline  # a question to a knowledge base without an app (``/v1/ask`` with ``kb``)
    unknown: Pipeline  # a name nothing declares: its route stage says so

    def for_request(self, ctx: RequestContext) -> Pipeline:
        if ctx.app is not None:
            named = self.apps.get(ctx.app_name or "")
            return named if named is not None else self.adhoc
        return self.models.get(ctx.model, self.unknown)
