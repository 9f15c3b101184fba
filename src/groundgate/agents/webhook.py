"""The approval webhook: a POST for every run that starts waiting for approval, so a reviewer
hears of it (``[agent] approval_webhook_url``).

Off the request path: each notification is a task of its own, bounded by a short timeout; a
receiver that fails or is slow is logged, never felt by the client. The body names the run,
its tenant and app, and the pending calls (tool names and arguments); an optional header
carries a shared secret read from the environment (never from the file, never logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import aiohttp

from groundgate.agents.loop import pending_view
from groundgate.config_agent import AgentSettings
from groundgate.observe.redact import remember_secret
from groundgate.store.runs import RunRecord

log = logging.getLogger("groundgate.agents")


class ApprovalWebhook:
    def __init__(self, config: AgentSettings) -> None:
        self.url = config.approval_webhook_url
        self.public_url = config.public_url or ""
        self.timeout = aiohttp.ClientTimeout(total=config.approval_webhook_timeout_s)
        self.headers = {"content-type": "application/json"}
        env = config.approval_webhook_secret_env
        secret = os.environ.get(env) if env else None
        if secret:
            remember_secret(secret)  # scrubbed wherever it might appear
            self.headers[config.approval_webhook_secret_header] = secret
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def payload(self, run: RunRecord) -> dict[str, Any]:
        return {
            "event": "run.pending_approval",
            "run_id": run.id,
            "tenant": run.tenant,
            "app": run.app,
            "pending": pending_view(run.pending),
            "url": f"{self.public_url}/v1/runs/{run.id}",
        }

    def notify(self, run: RunRecord) -> None:
        """Announce ``run`` (waiting for approval) in the background; no-op when off."""
        if self.url is None:
            return
        task = asyncio.get_running_loop().create_task(self._post(self.url, self.payload(run)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=self.timeout)
            async with self._session.post(url, json=payload, headers=self.headers) as resp:
                if resp.status >= 300:
                    log.warning(
                        "approval webhook answered %s for run %s", resp.status, payload["run_id"]
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "approval webhook failed for run %s: %s", payload["run_id"], type(exc).__name__
            )
        except Exception:
            log.exception("approval webhook failed for run %s", payload["run_id"])

    async def aclose(self) -> None:
        """Let notifications in flight finish (each is bounded by its timeout), then close."""
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
