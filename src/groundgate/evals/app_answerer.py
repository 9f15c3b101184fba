"""The thing ``groundgate eval --app NAME`` evaluates: an app of a running Container."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from groundgate import __version__
from groundgate.config import Settings
from groundgate.config_prompts import parse_ref
from groundgate.container import Container
from groundgate.errors import GroundgateError
from groundgate.evals.dataset import EvalCase
from groundgate.evals.fingerprint import Fingerprint, digest
from groundgate.evals.runner import AnswerResult

TENANT = "default"  # the tenant an in-process ask runs as (no principal)


class AppAnswerer:
    """Answers a case through the app's full grounded pipeline, in-process."""

    def __init__(
        self,
        runtime: Container,
        app: str,
        *,
        top_k: int | None = None,
        variant: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.app = app
        self.top_k = top_k
        self.variant = variant  # recorded only: pin it with evals.variants.pin_variant

    async def __call__(self, case: EvalCase, /) -> AnswerResult:
        history: list[dict[str, Any]] = [t.model_dump() for t in case.history]
        ctx = self.runtime.new_ask(
            case.question,
            app=self.app,
            top_k=self.top_k,
            filters=case.filters or None,
            history=history,
        )
        started = time.perf_counter()
        await self.runtime.complete(ctx)
        latency = (time.perf_counter() - started) * 1000
        completion = ctx.completion
        message = (completion.choices[0].get("message") or {}) if completion else {}
        retrieved = list(dict.fromkeys(p.chunk.doc_id for p in ctx.passages))
        cited = list(dict.fromkeys(c["document_id"] for c in ctx.citations))
        return AnswerResult(
            answer=str(message.get("content") or ""),
            abstained=ctx.abstained,
            retrieved_ids=retrieved,
            contexts=[s.chunk.text for s in ctx.sources],
            cited_ids=cited,
            latency_ms=latency,
            cost_usd=ctx.cost_usd,
            trace_id=ctx.trace_id,
        )

    async def fingerprint(self) -> Fingerprint:
        """What this app's answers depend on (the eval cache's scope; recorded on the run)."""
        settings = self.runtime.settings
        app = settings.apps[self.app]
        kb_version = (
            await self.runtime.store.knowledge.kb_version(TENANT, app.knowledge_base)
            if app.knowledge_base is not None
            else None
        )
        resolved = {
            ref: await self.resolve_prompt(ref)
            for ref in [app.prompt, *(v.prompt for v in app.variants if v.prompt is not None)]
        }
        return app_fingerprint(
            settings,
            self.app,
            kb_version=kb_version,
            variant=self.variant,
            top_k=self.top_k,
            resolved_prompts=resolved,
        )

    async def resolve_prompt(self, ref: str) -> tuple[str, str]:
        """The version a prompt reference names now (``name@version``: a label resolves
        through the store) and the digest of its content: an edited prompt is a different
        answer even under the same name."""
        try:
            version = await self.runtime.prompts.lookup(parse_ref(ref))
        except GroundgateError:
            return ref, digest(ref)
        return version.ref, version.digest


def _models_used(settings: Settings, roots: list[str]) -> list[str]:
    """The app's models and every model they may fall back or route to, in a stable order."""
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        model = settings.models.get(name)
        if model is None:
            continue
        todo += model.fallbacks + model.context_window_fallbacks
        if model.route is not None:
            todo += list(model.route.tiers.values())
    return seen


def app_fingerprint(
    settings: Settings,
    app_name: str,
    *,
    kb_version: str | None = None,
    variant: str | None = None,
    top_k: int | None = None,
    resolved_prompts: Mapping[str, tuple[str, str]] | None = None,
) -> Fingerprint:
    """The fingerprint of ``app_name`` as ``settings`` configure it (no I/O):
    ``resolved_prompts`` maps each prompt reference to the version it resolves to and its
    digest (``AppAnswerer.resolve_prompt``); a reference missing from it counts as itself."""
    app = settings.apps[app_name]
    roots = [app.model, *(v.model for v in app.variants if v.model is not None)]
    if app.route is not None:
        roots += list(app.route.tiers.values())
    models = _models_used(settings, roots)
    deployments = {m: list(settings.models[m].deployments) for m in models if m in settings.models}
    providers = sorted({d.partition(":")[0] for ds in deployments.values() for d in ds})
    prompts = {"answer": app.prompt}
    prompts |= {f"variant:{v.name}": v.prompt for v in app.variants if v.prompt is not None}
    known = resolved_prompts or {}
    resolved = {role: known.get(ref, (ref, digest(ref))) for role, ref in prompts.items()}
    effective = {
        "groundgate": __version__,
        "app": app.model_dump(mode="json"),
        "top_k": top_k,
        "models": {m: settings.models[m].model_dump(mode="json") for m in deployments},
        "providers": {
            p: settings.providers[p].model_dump(mode="json")
            for p in providers
            if p in settings.providers
        },
        "local": settings.local.model_dump(mode="json"),
        "knowledge_base": (
            settings.kb_config(app.knowledge_base).model_dump(mode="json")
            if app.knowledge_base is not None
            else None
        ),
        "embedders": {n: e.model_dump(mode="json") for n, e in settings.embedders.items()},
        "guards": settings.guards.model_dump(mode="json"),
        "prompts": resolved,
    }
    return Fingerprint(
        config_digest=digest(effective),
        prompt_versions={role: version for role, (version, _) in resolved.items()},
        model_versions=deployments,
        kb_version=kb_version,
        variant=variant,
    )
