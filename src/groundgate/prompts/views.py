"""What ``groundgate prompts`` and ``/v1/prompts`` show of the registry: the same JSON-ready
dicts for both, and a version's content as text (what ``prompts diff`` compares)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from groundgate.prompts.format import PromptVersion
from groundgate.prompts.registry import PromptRegistry
from groundgate.prompts.render import PLACEHOLDER, render
from groundgate.store.prompts import LabelMove


async def prompts_list(registry: PromptRegistry) -> list[dict[str, Any]]:
    """Every prompt: its versions, labels, token counts and which versions were used."""
    labels = await registry.labels()
    used = await registry.used()
    changed = {c.ref for c in await registry.changed_versions()}
    return [
        {
            "name": name,
            "description": registry.latest(name).description,
            "versions": list(versions),
            "latest": max(versions),
            "labels": labels.get(name, {}),
            "tokens": {str(n): registry.tokens(v) for n, v in versions.items()},
            "used": sorted(used.get(name, set())),
            "changed": sorted(v.version for v in versions.values() if v.ref in changed),
        }
        for name in registry.names()
        for versions in [registry.versions(name)]
    ]


async def prompt_view(registry: PromptRegistry, name: str) -> dict[str, Any]:
    """One prompt: each version's summary and the labels that point at them."""
    versions = registry.versions(name)
    used = (await registry.used(name)).get(name, set())
    changed = {c.ref for c in await registry.changed_versions()}
    return {
        "name": name,
        "description": registry.latest(name).description,
        "latest": max(versions),
        "labels": (await registry.labels(name)).get(name, {}),
        "versions": [
            {
                "version": n,
                "ref": v.ref,
                "digest": v.digest,
                "tokens": registry.tokens(v),
                "used": n in used,
                "changed": v.ref in changed,
            }
            for n, v in versions.items()
        ],
    }


def version_view(registry: PromptRegistry, version: PromptVersion) -> dict[str, Any]:
    """One version in full: its content, and its messages with placeholders shown."""
    spec = version.spec
    return {
        "name": version.name,
        "version": version.version,
        "ref": version.ref,
        "description": version.description,
        "digest": version.digest,
        "tokens": registry.tokens(version),
        **spec.model_dump(mode="json", exclude={"version"}),
        "placeholders": placeholder_names(version),
        "rendered": display_messages(version),
    }


def display_messages(version: PromptVersion) -> list[dict[str, str]]:
    """The messages the version sends, each variable shown as its ``{{ name }}`` placeholder
    (values are never rendered again, so the placeholders stay as they are)."""
    spec = version.spec
    shown = {name: f"{{{{ {name} }}}}" for name in [*spec.variables, "input"]}
    shown["instructions"] = render(spec.instructions, shown)
    examples: list[dict[str, str]] = []
    for example in spec.examples:
        examples += [
            {"role": "user", "content": example.user},
            {"role": "assistant", "content": example.assistant},
        ]
    if not spec.messages:
        return [{"role": "system", "content": shown["instructions"]}, *examples]
    rendered = [{"role": m.role, "content": render(m.content, shown)} for m in spec.messages]
    head = 0
    while head < len(rendered) and rendered[head]["role"] in ("system", "developer"):
        head += 1
    return [*rendered[:head], *examples, *rendered[head:]]


def content_text(version: PromptVersion) -> str:
    """The version's content as lines a person can diff (everything its digest covers)."""
    spec = version.spec
    lines = [f"version: {spec.version}", "instructions:", *_indent(spec.instructions)]
    lines.append(f"source_format: {json.dumps(spec.source_format)}")
    if spec.messages:
        lines.append("messages:")
        for message in spec.messages:
            lines += [f"  - role: {message.role}", *_indent(message.content, 4)]
    if spec.variables:
        lines.append("variables:")
        for name, var in spec.variables.items():
            default = "" if var.default is None else f", default {json.dumps(var.default)}"
            required = "required" if var.required else "optional"
            described = f" - {var.description}" if var.description else ""
            lines.append(f"  {name}: {var.type}, {required}{default}{described}")
    if spec.examples:
        lines.append("examples:")
        for example in spec.examples:
            lines += ["  - user:", *_indent(example.user, 4), "    assistant:"]
            lines += _indent(example.assistant, 4)
    if spec.output_schema is not None:
        lines += ["output_schema:", *_indent(json.dumps(spec.output_schema, indent=2))]
    if spec.metadata:
        lines += ["metadata:", *_indent(json.dumps(spec.metadata, indent=2, sort_keys=True))]
    return "\n".join(lines) + "\n"


def content_diff(a: PromptVersion, b: PromptVersion) -> str:
    """A unified diff of two versions' content ("" when they are the same)."""
    return "".join(
        difflib.unified_diff(
            content_text(a).splitlines(keepends=True),
            content_text(b).splitlines(keepends=True),
            fromfile=a.ref,
            tofile=b.ref,
        )
    )


def move_view(move: LabelMove) -> dict[str, Any]:
    return {
        "name": move.name,
        "label": move.label,
        "from_version": move.from_version,
        "to_version": move.to_version,
        "moved_at": move.moved_at,
        "moved_by": move.moved_by,
        "tenant": move.tenant,
        "key_id": move.key_id,
        "note": move.note,
    }


def placeholder_names(version: PromptVersion) -> list[str]:
    """The placeholders the version's messages use, in order of first use."""
    texts = [version.spec.instructions, *(m.content for m in version.spec.messages)]
    return list(dict.fromkeys(n for t in texts for n in PLACEHOLDER.findall(t)))


def _indent(text: str, by: int = 2) -> list[str]:
    return [" " * by + line for line in (text.splitlines() or [""])]
