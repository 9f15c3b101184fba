"""The ``[guards]`` section and each app's or model's ``guards`` table: which input and output
guards run, and what each does when it fires. Kept beside ``config.py``, which imports it.

``[guards]`` holds the defaults of every app and model; ``[apps.NAME.guards]`` (or
``[models.NAME.guards]``) overrides only the keys it names (``effective_guards``). A guard is a
table (``injection = { action = "block", threshold = 0.8 }``) or, for short, just its action
(``injection = "block"``).

Actions (not every guard takes every one; a wrong one is a config error naming the key):

* ``off``: the guard does not run (and costs nothing).
* ``flag``: the decision is recorded (trace, metrics, the ``x-groundgate-guards`` header and
  the response's ``groundgate.guards``); the request goes on unchanged.
* ``redact``: what was found is replaced by a typed placeholder (``[EMAIL_1]``) before it goes
  further (upstream, the cache, the trace; on the answer: before the client).
* ``block``: the request is refused with a 400 whose ``code`` names the guard (nothing is sent
  upstream); on the answer, it is withheld.
* ``review``: the request goes on, and its answer goes to the human review queue
  (``review.mode``: ``hold`` or ``audit``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Action = Literal["off", "flag", "redact", "block", "review"]
# A guard that scores (injection, topics) has nothing to redact.
ScoreAction = Literal["off", "flag", "block", "review"]
# Retrieved passages and tool results that read like instructions (indirect injection): the
# request is not failed for them; the passage is wrapped in a fence that tells the model it is
# data, or dropped.
PassageAction = Literal["off", "flag", "fence", "drop"]
# An answer sentence without support in the passages: recorded, removed, the whole answer
# turned into an abstention, or sent to review.
GroundednessAction = Literal["off", "flag", "remove", "abstain", "review"]
# The structured kinds the PII guard knows (``guards/pii.py``).
PII_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _action_alone(cls, data: Any) -> Any:
        # ``pii = "redact"`` is short for ``pii = { action = "redact" }``.
        return {"action": data} if isinstance(data, str) else data


class InjectionGuard(_Strict):
    """Prompt injection and jailbreaks in the client's own messages (``guards/injection.py``)."""

    action: ScoreAction = "off"
    # A probability in [0, 1]; None: the shipped model's threshold (chosen on held-out data).
    threshold: float | None = Field(None, ge=0, le=1)


class PassagesGuard(_Strict):
    """Indirect injection: retrieved passages and tool results scored by the same classifier,
    separately from the question."""

    action: PassageAction = "off"
    threshold: float | None = Field(None, ge=0, le=1)


class SecretsGuard(_Strict):
    """API keys, tokens, private keys, passwords in URLs (``guards/secrets.py``)."""

    action: Action = "off"


class PiiGuard(_Strict):
    """E-mail, phone, card (Luhn), IBAN (mod 97), IP addresses (``guards/pii.py``)."""

    action: Action = "off"
    types: list[str] = Field(default_factory=lambda: list(PII_TYPES))
    # Redaction is reversible for this request: the placeholders the answer quotes are put
    # back before the client sees it (the provider, the cache and the trace never see them).
    restore: bool = False

    @field_validator("types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(PII_TYPES))
        if unknown:
            raise ValueError(f"unknown PII types {unknown} (known: {', '.join(PII_TYPES)})")
        return value


class TopicsGuard(_Strict):
    """Requests outside what the app is for, by the question's embedding: similar to a
    ``deny`` topic, or (when ``allow`` is set) similar to none of the ``allow`` topics."""

    action: ScoreAction = "off"
    deny: list[str] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    # Cosine similarity (the cache embedder's space) at which a question is "about" a topic.
    # Give a topic as a short label and a few example questions: in a spot check (README,
    # "Guardrails") on-topic questions scored 0.26-0.70 against the nearest, off-topic ones
    # at most 0.17; against a bare label, on-topic ones only 0.24-0.39.
    threshold: float = Field(0.3, ge=-1, le=1)

    @model_validator(mode="after")
    def _needs_topics(self) -> TopicsGuard:
        if self.action != "off" and not (self.deny or self.allow):
            raise ValueError("a topics guard needs 'deny' or 'allow' topics")
        return self


class LimitsGuard(_Strict):
    """Size and language limits on the client's messages."""

    action: ScoreAction = "off"
    # The longest user message, in characters (None: no limit beyond the server's own).
    max_chars: int | None = Field(None, ge=1)
    # ISO 639-1 codes the app answers in (empty: any language), detected by
    # ``guards/language.py``.
    languages: list[str] = Field(default_factory=list)
    # A message is refused as foreign only when its most likely language is not listed and has
    # at least this probability: a few words, code or numbers score low and always pass.
    # 0.6 refused none of 3,809 English questions in an English-only app and 98% of sentences
    # in nine other languages (``bench/language.py``).
    language_confidence: float = Field(0.6, ge=0, le=1)

    @field_validator("languages")
    @classmethod
    def _iso_639_1(cls, value: list[str]) -> list[str]:
        codes = [code.strip().lower() for code in value]
        wrong = [
            code for code in codes if not (len(code) == 2 and code.isascii() and code.isalpha())
        ]
        if wrong:
            raise ValueError(f"{wrong} are not ISO 639-1 codes (two letters: en, de, zh, ...)")
        return codes


class SchemaGuard(_Strict):
    """``response_format`` (json_object / json_schema) and tool-call arguments, validated; an
    invalid answer is re-asked with the validation error, then refused with a 502."""

    action: Literal["off", "flag", "block"] = "block"
    max_reasks: int = Field(2, ge=0, le=5)


class LeakGuard(_Strict):
    """PII and secrets in the answer (the model repeating what it saw in documents or tools)."""

    action: Action = "off"
    types: list[str] = Field(default_factory=lambda: [*PII_TYPES, "SECRET"])

    @field_validator("types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - {*PII_TYPES, "SECRET"})
        if unknown:
            raise ValueError(f"unknown types {unknown}")
        return value


class PolicyGuard(_Strict):
    """Deny patterns (regular expressions, case-insensitive) on the answer."""

    action: Action = "off"
    deny: list[str] = Field(default_factory=list)

    @field_validator("deny")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value


class GroundednessGuard(_Strict):
    """Grounded apps: each answer sentence scored against the passages it cites and all the
    retrieved ones (``guards/grounding.py``); ``[n]`` markers citing nothing are removed."""

    action: GroundednessAction = "off"
    # Sentence support below this is unsupported (None: the shipped threshold).
    threshold: float | None = Field(None, ge=0, le=1)


class ReviewPolicy(_Strict):
    """When answers go to the human review queue, and what the client gets meanwhile."""

    # hold: the answer waits for a reviewer (the client gets 202 and a review id, or the
    # safe answer); audit: the answer goes out and is reviewed afterwards.
    mode: Literal["hold", "audit"] = "audit"
    # A share of all answers sampled for review (0: none).
    sample: float = Field(0.0, ge=0, le=1)
    # Every answer of these tenants is reviewed.
    tenants: list[str] = Field(default_factory=list)
    # Every answer of this app or model is reviewed.
    always: bool = False
    # Grounded answers whose groundedness score is below this are reviewed (None: never).
    below_groundedness: float | None = Field(None, ge=0, le=1)
    # hold mode: answer this at once instead of 202 (the held answer waits for review).
    safe_answer: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _action_alone(cls, data: Any) -> Any:
        return {"mode": data} if isinstance(data, str) else data


class GuardsConfig(BaseModel):
    # -- input ---------------------------------------------------------------------------
    injection: InjectionGuard = InjectionGuard()
    passages: PassagesGuard = PassagesGuard()
    secrets: SecretsGuard = SecretsGuard()
    pii: PiiGuard = PiiGuard()
    topics: TopicsGuard = TopicsGuard()
    limits: LimitsGuard = LimitsGuard()
    # -- output --------------------------------------------------------------------------
    schema_: SchemaGuard = Field(SchemaGuard(), alias="schema")
    leak: LeakGuard = LeakGuard()
    policy: PolicyGuard = PolicyGuard()
    groundedness: GroundednessGuard = GroundednessGuard()
    # -- review --------------------------------------------------------------------------
    review: ReviewPolicy = ReviewPolicy()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def input_on(self) -> bool:
        """Any guard on the way in (the ``guard_in`` stage)."""
        return any(
            guard.action != "off"
            for guard in (
                self.injection,
                self.passages,
                self.secrets,
                self.pii,
                self.topics,
                self.limits,
            )
        )

    @property
    def output_on(self) -> bool:
        """Any check of the answer (the ``guard_out`` stage; schema has its own stage)."""
        return any(
            guard.action != "off" for guard in (self.leak, self.policy, self.groundedness)
        ) or (self.pii.action == "redact" and self.pii.restore)

    @property
    def review_on(self) -> bool:
        review = self.review
        return (
            review.always
            or review.sample > 0
            or bool(review.tenants)
            or review.below_groundedness is not None
            or self.wants_review
        )

    @property
    def wants_review(self) -> bool:
        """A guard whose action is ``review``."""
        return any(
            getattr(self, name).action == "review"
            for name in ("injection", "secrets", "pii", "topics", "limits", "leak", "policy")
        ) or (self.groundedness.action == "review")


def effective_guards(base: GuardsConfig, override: GuardsConfig | None) -> GuardsConfig:
    """``base`` with what ``override`` set, guard by guard and key by key (an app that sets
    ``pii.restore`` keeps the default ``pii.action``)."""
    if override is None:
        return base
    return GuardsConfig.model_validate(
        deep_merge(base.model_dump(by_alias=True), _set_fields(override))
    )


def _set_fields(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in model.model_fields_set:
        info = type(model).model_fields[name]
        key = info.alias or name
        value = getattr(model, name)
        out[key] = _set_fields(value) if isinstance(value, BaseModel) else value
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s keys, tables merged key by key (also how ``config.py``
    lays the config file over the embedded defaults)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
