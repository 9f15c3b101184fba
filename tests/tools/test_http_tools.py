"""HTTP tools against a real HTTP server on 127.0.0.1: a legitimate call (with allow_private)
sends the env-sourced header and returns the body; every SSRF attempt is refused with a clear
tool error; arguments never change the host; redirects, oversize and slow answers are errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from groundgate.config_tools import HttpToolConfig
from groundgate.errors import ConfigError
from groundgate.tools.base import ToolContext
from groundgate.tools.env import resolve_env_values
from groundgate.tools.http import HttpTool, build_url, http_spec
from groundgate.tools.ssrf import refusal

SECRET = "s3cr3t-token-value-9f2c"
CTX = ToolContext(tenant="default", app="agent", key_id=None, trace_id="t1")


@dataclass
class Recorder:
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Recorder]:
    recorder = Recorder()

    async def record(request: web.Request) -> web.StreamResponse:
        recorder.seen.append(
            {
                "path": request.raw_path,
                "host": request.host,
                "auth": request.headers.get("Authorization"),
                "body": await request.text(),
            }
        )
        if request.path.startswith("/redirect"):
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if request.path.startswith("/big"):
            return web.Response(body=b"x" * 5000)
        if request.path.startswith("/slow"):
            await asyncio.sleep(1)
        if request.path.startswith("/missing"):
            return web.Response(status=404, text="no such item")
        return web.json_response({"ok": True, "path": request.raw_path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.url = f"http://127.0.0.1:{port}"
    yield recorder
    await runner.cleanup()


def make_tool(url: str, **options: Any) -> HttpTool:
    headers = options.pop("headers", {})
    config = HttpToolConfig(kind="http", url=url, headers=headers, **options)
    resolved = resolve_env_values(config.headers, "tools.t.headers", {"GG_TOOL_TOKEN": SECRET})
    return HttpTool(http_spec("t", config), config, resolved)


async def call(tool: HttpTool, arguments: dict[str, Any]) -> Any:
    try:
        return await tool.call(arguments, CTX)
    finally:
        await tool.close()


async def test_legitimate_call_sends_env_header_and_keeps_it_secret(
    server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tool = make_tool(
        server.url + "/items/{item}?q={q}",
        headers={"Authorization": "env:GG_TOOL_TOKEN"},
        allow_private=True,
    )
    result = await call(tool, {"item": "42", "q": "a b"})
    assert not result.is_error, result.content
    assert result.data == {"ok": True, "path": "/items/42?q=a%20b"}
    assert server.seen[-1]["auth"] == SECRET
    shown = f"{result.content} {result.metadata} {result.data} {tool.spec} {caplog.text}"
    assert SECRET not in shown


async def test_post_sends_other_arguments_as_json(server: Recorder) -> None:
    tool = make_tool(server.url + "/orders/{id}", method="POST", allow_private=True)
    result = await call(tool, {"id": "7", "qty": 3})
    assert not result.is_error, result.content
    assert server.seen[-1]["path"] == "/orders/7"
    assert server.seen[-1]["body"] == '{"qty":3}'


@pytest.mark.parametrize(
    "value",
    [
        "@evil.com",
        "//evil.com/x",
        "%2F%2Fevil.com",
        "\\\\evil.com",
        "http://evil.com/",
        "..",
        "a/../b",
    ],
)
async def test_arguments_cannot_change_the_host(server: Recorder, value: str) -> None:
    tool = make_tool(server.url + "/items/{item}", allow_private=True)
    result = await call(tool, {"item": value})
    assert not result.is_error, result.content
    request = server.seen[-1]
    assert request["host"] == server.url.removeprefix("http://")
    # The whole value is one encoded path segment below /items/.
    assert request["path"].startswith("/items/")
    assert "/" not in request["path"].removeprefix("/items/")


def test_build_url_encodes_every_delimiter() -> None:
    url = build_url("https://api.example.com/v1/{a}?q={b}", {"a": "x/@:?#\\", "b": "&c=d"})
    assert url == "https://api.example.com/v1/x%2F%40%3A%3F%23%5C?q=%26c%3Dd"


async def test_loopback_is_refused_without_allow_private(server: Recorder) -> None:
    before = len(server.seen)
    result = await call(make_tool(server.url + "/items/{item}"), {"item": "1"})
    assert result.is_error and result.metadata["refused"] == "ssrf"
    assert "loopback" in result.content and "allow_private" in result.content
    assert len(server.seen) == before  # nothing was sent


async def test_a_name_resolving_to_loopback_is_refused(server: Recorder) -> None:
    port = server.url.rsplit(":", 1)[1]
    before = len(server.seen)
    result = await call(make_tool(f"http://localhost:{port}/x"), {})
    assert result.is_error and result.metadata["refused"] == "ssrf", result.content
    assert "localhost resolves to" in result.content
    assert len(server.seen) == before


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("10.0.0.8", "private"),
        ("192.168.1.1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("[::1]", "loopback"),
        ("[fe80::1]", "link-local"),
        ("[fd00::1]", "private"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:169.254.169.254]", "link-local"),
    ],
)
async def test_non_public_addresses_are_refused(host: str, kind: str) -> None:
    result = await call(make_tool(f"http://{host}:9/latest/meta-data/"), {})
    assert result.is_error and result.metadata["refused"] == "ssrf"
    assert kind in result.content


def test_public_addresses_pass_the_check() -> None:
    assert refusal("93.184.215.14") is None
    assert refusal("2606:4700::1111") is None


async def test_redirects_are_not_followed(server: Recorder) -> None:
    tool = make_tool(server.url + "/redirect", allow_private=True)
    result = await call(tool, {})
    assert result.is_error and "redirect (302)" in result.content
    assert "169.254" not in result.content


async def test_response_size_and_time_are_capped(server: Recorder) -> None:
    big = await call(
        make_tool(server.url + "/big", allow_private=True, max_response_bytes=1000), {}
    )
    assert big.is_error and "larger than 1000 bytes" in big.content
    slow = await call(make_tool(server.url + "/slow", allow_private=True, timeout_s=0.3), {})
    assert slow.is_error and "timed out" in slow.content


async def test_http_errors_are_tool_errors(server: Recorder) -> None:
    result = await call(make_tool(server.url + "/missing/{id}", allow_private=True), {"id": "x"})
    assert result.is_error and "HTTP 404" in result.content


def test_missing_env_header_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_env_values({"Authorization": "env:GG_NOT_SET"}, "tools.t.headers", {})
    assert "GG_NOT_SET" in str(err.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://{host}/x", "host part must be fixed"),
        ("http://user@api.example.com/x", "host part must be fixed"),
        ("ftp://api.example.com/x", "http:// or https://"),
        ("/relative/{x}", "http:// or https://"),
    ],
)
def test_url_templates_must_fix_the_host(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HttpToolConfig(kind="http", url=url)


def test_credential_headers_must_come_from_env() -> None:
    with pytest.raises(ValueError, match="env:VAR"):
        HttpToolConfig(kind="http", url="https://a.example/x", headers={"Authorization": "abc"})
