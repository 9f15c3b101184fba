"""The tools one run may call, ready to call: each with its arguments' validator compiled once,
and one call made safely (arguments parsed and checked, the tool's timeout enforced, any
exception turned into an error result for the model: a tool never crashes the run).

A :class:`ToolBox` is built once per app and set of allowed tools and reused by every run
(``ToolBoxes``), so a step costs no schema compilation and no rebuilt ``tools`` list.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from groundgate.errors import InvalidRequest
from groundgate.guards.schema import compile_schema
from groundgate.tools.base import Tool, ToolContext, ToolResult, ToolSet

log = logging.getLogger("groundgate.agents")
# Most characters of one tool result the model is shown (a longer one is cut and says so).
MAX_RESULT_CHARS = 20_000
_MAX_ERRORS = 3  # validation errors told to the model per call


@dataclass(frozen=True, slots=True)
class ReadyTool:
    tool: Tool
    validator: jsonschema_rs.Validator | None  # None: the tool's schema could not compile

    @property
    def name(self) -> str:
        return self.tool.spec.name


@dataclass(frozen=True, slots=True)
class Arguments:
    """A proposed call's arguments: parsed, or why they are unusable."""

    value: dict[str, Any]
    errors: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors


class ToolBox:
    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools: dict[str, ReadyTool] = {}
        for tool in tools:
            spec = tool.spec
            try:
                validator = compile_schema(spec.parameters, f"tools.{spec.name}.parameters")
            except InvalidRequest as exc:
                log.warning("tool %s has an unusable schema: %s", spec.name, exc.message)
                validator = None
            self.tools[spec.name] = ReadyTool(tool, validator)
        # What the model is sent as ``tools`` (None: no tools, the field is left out).
        self.openai_tools: list[dict[str, Any]] | None = [
            ready.tool.spec.openai_tool() for ready in self.tools.values()
        ] or None

    def get(self, name: str) -> ReadyTool | None:
        return self.tools.get(name)

    def arguments(self, ready: ReadyTool | None, raw: Any) -> Arguments:
        """Parse a call's ``arguments`` (a JSON string in the OpenAI format) and validate them
        against the tool's schema."""
        if ready is None:
            return Arguments({}, ("no such tool",))
        if isinstance(raw, dict):
            value: Any = raw
        else:
            try:
                value = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
            except ValueError:
                return Arguments({}, ("the arguments are not valid JSON",))
        if not isinstance(value, dict):
            return Arguments({}, ("the arguments must be a JSON object",))
        if ready.validator is None:
            return Arguments(value, ("the tool's parameter schema is unusable",))
        errors = tuple(
            _described(error)
            for _, error in zip(
                range(_MAX_ERRORS), ready.validator.iter_errors(value), strict=False
            )
        )
        return Arguments(value, errors)

    async def call(
        self, ready: ReadyTool, arguments: dict[str, Any], ctx: ToolContext, timeout_s: float
    ) -> ToolResult:
        """One call, never raising (but for cancellation): a timeout or an exception is an
        error result the model reads."""
        name = ready.name
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                result = await ready.tool.call(arguments, ctx)
        except TimeoutError:
            return ToolResult(f"Error: the tool '{name}' timed out after {timeout_s:g}s.", True)
        except Exception as exc:  # a tool's failure is the model's to handle, not the run's
            log.warning("tool %s failed: %s", name, type(exc).__name__)
            return ToolResult(f"Error: the tool '{name}' failed ({type(exc).__name__}).", True)
        if not isinstance(result, ToolResult):
            return ToolResult(f"Error: the tool '{name}' returned no result.", True)
        if len(result.content) > MAX_RESULT_CHARS:
            cut = result.content[:MAX_RESULT_CHARS]
            result.content = cut + f"\n[... cut at {MAX_RESULT_CHARS} characters]"
        return result


def _described(error: jsonschema_rs.ValidationError) -> str:
    where = "/".join(str(p) for p in error.instance_path) or "(arguments)"
    message = error.message.split("\n", 1)[0]
    return f"{where}: {message[:200]}"


class ToolBoxes:
    """Tool boxes by app and allowed tools, built on first use (a bounded few per app: one per
    distinct key permission set)."""

    def __init__(self, tools: ToolSet | None, size: int = 256) -> None:
        self._tools = tools
        self._boxes: OrderedDict[tuple[str, frozenset[str] | None], ToolBox] = OrderedDict()
        self._size = size

    def for_app(self, app: str, allowed: frozenset[str] | None) -> ToolBox:
        key = (app, allowed)
        box = self._boxes.get(key)
        if box is None:
            box = ToolBox(self._tools.for_app(app, allowed) if self._tools is not None else [])
            self._boxes[key] = box
            if len(self._boxes) > self._size:
                self._boxes.popitem(last=False)
        return box

    def clear(self) -> None:
        """Forget the boxes (the tool set changed: MCP servers listed their tools again)."""
        self._boxes.clear()
