"""What a cached answer is keyed by.

Everything that can change an answer goes into the key, so a hit is always an answer given
under the same conditions: the tenant, the target (app or model) and its A/B variant, for apps
the prompt version, knowledge-base version and retrieval settings, the sampling parameters and
tools, the earlier messages of the conversation, and the question in its canonical form
(``normalize_question``).

These are split in two digests:

* the **partition**: everything except the question. The semantic index is per partition, so a
  similar question is only ever looked up among answers given under identical conditions;
* the **key**: the partition plus the normalised question, for exact lookups.

Only single-turn requests (system messages, then one user question as text) may be answered
semantically: in a conversation, "and in 2020?" means nothing without what came before, and
the history already makes a near-duplicate unlikely.

A question longer than ``MAX_NORMALIZED_CHARS`` is keyed on its exact text instead (a hash of
it, in a key space of its own) and is not looked up semantically: normalising costs time that
grows with the text, on every request, and the embedder reads only the first few hundred
tokens of it anyway, so two long texts that differ further on would look alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from groundgate.cache.backend import Scope
from groundgate.cache.normalize import normalize_question

# Request fields that cannot change the answer: transport, attribution, and OpenAI's storage
# opt-ins. Everything else the client sends (temperature, tools, response_format, ...) counts.
IGNORED_PARAMS = frozenset({"stream", "stream_options", "user", "metadata", "store"})
_SYSTEM_ROLES = frozenset({"system", "developer"})
# OpenAI's default when a request sets no temperature: such requests are sampled.
_DEFAULT_TEMPERATURE = 1.0
# Longer questions are keyed on their exact text (see the module docstring). Normalising this
# many characters takes about half a millisecond; a real question is far shorter.
MAX_NORMALIZED_CHARS = 2048
# orjson writes integers of 64 bits at most; whole floats beyond that stay floats.
_INT64_LIMIT = 2.0**63


@dataclass(frozen=True, slots=True)
class CacheIdentity:
    scope: Scope
    key: str
    question: str  # the question as written ("" when the request is not one text question)
    normalized: str  # its canonical form
    single_turn: bool  # eligible for the semantic cache


def is_sampled(params: Mapping[str, Any]) -> bool:
    """Whether the answer is drawn at random: temperature above 0 (OpenAI's default is 1)."""
    temperature = params.get("temperature", _DEFAULT_TEMPERATURE)
    return not isinstance(temperature, (int, float)) or temperature > 0


def identify(
    *,
    tenant: str,
    target: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    app: Mapping[str, Any] | None = None,
    kb_version: str | None = None,
    embedder: str | None = None,
    variant: str | None = None,
    model: str | None = None,
) -> CacheIdentity:
    """The cache identity of one request. ``app`` holds the app settings that shape its answers
    (prompt version, model, retrieval settings, filters); ``kb_version`` the knowledge base's
    version token (``KnowledgeStore.kb_version``); ``variant`` the request's A/B variant (each
    variant answers from its own entries: another's answer would blur the comparison)."""
    question, earlier = _split(messages)
    single_turn = bool(question) and all(m.get("role") in _SYSTEM_ROLES for m in earlier)
    partition_fields: dict[str, Any] = {
        "v": 1,
        "tenant": tenant,
        "target": target,
        "app": app,
        "kb_version": kb_version,
        "embedder": embedder,
        "params": {k: v for k, v in params.items() if k not in IGNORED_PARAMS},
        "earlier": list(earlier),
    }
    if variant is not None:  # only then: keys of targets without a split stay as they were
        partition_fields["variant"] = variant
    if model is not None:
        # The model a router chose among the target's tiers: a tier's answers are its own.
        partition_fields["model"] = model
    partition = _digest(orjson.dumps(_canonical(partition_fields), option=orjson.OPT_SORT_KEYS))
    if len(question) <= MAX_NORMALIZED_CHARS:
        normalized = normalize_question(question) if question else ""
        key = _digest(f"{partition}\x00{normalized}".encode())
    else:
        # "\x01" where short questions have "\x00": no long text can share a short one's key.
        normalized, single_turn = "", False
        key = _digest(f"{partition}\x01".encode() + question.encode("utf-8", "surrogatepass"))
    return CacheIdentity(Scope(tenant, target, partition), key, question, normalized, single_turn)


def _split(messages: Sequence[Mapping[str, Any]]) -> tuple[str, Sequence[Mapping[str, Any]]]:
    """(the final user question as text, the messages before it); ("", all messages) when the
    request does not end in a text question."""
    if messages:
        last = messages[-1]
        content = last.get("content")
        extra = set(last) - {"role", "content"}
        if last.get("role") == "user" and isinstance(content, str) and not extra:
            return (content, messages[:-1]) if content.strip() else ("", messages)
    return "", messages


def _canonical(value: Any) -> Any:
    """JSON numbers compared by value: ``0`` and ``0.0`` (or ``1`` and ``1.0``) are one
    temperature, whichever way a client serialises it. A whole float too large for a 64-bit
    integer (``1e300``) stays a float: JSON parsing yields no integer that large to match."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _INT64_LIMIT:
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
