"""The one way Groundgate opens Redis (rate limits, cache): a bounded connection pool.

A burst of requests queues for a connection (up to ``timeout_s``) instead of opening one
socket each. One retry covers a pooled connection the server closed; more would hold a request
long past its usefulness while Redis is down, and callers decide themselves what a failure
means (fail open or closed).
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def redis_client(url: str, *, timeout_s: float = 1.0, max_connections: int = 64) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
    )
    return Redis(connection_pool=pool)
