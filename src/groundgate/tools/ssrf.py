"""SSRF defence for HTTP tools: which addresses a tool may reach, and a resolver that checks
every address a host name resolves to *and is the one the connection uses*, so a name cannot
pass the check with one address and connect to another (no DNS-rebinding gap)."""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SsrfRefused(OSError):
    """The destination is not public (loopback, private, link-local, multicast, ...)."""


def refusal(address: str) -> str | None:
    """Why ``address`` must not be reached without ``allow_private``; None if it is public."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 carried inside IPv6 (::ffff:a.b.c.d, 6to4, Teredo) is judged as that IPv4.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            inner = refusal(str(embedded))
            if inner:
                return inner
    for label, bad in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),  # 169.254.169.254, the cloud metadata service
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if bad:
            return f"{ip} is a {label} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class CheckedResolver(AbstractResolver):
    """Resolves like aiohttp's default and refuses the host if any address is not public.
    aiohttp connects only to the addresses a resolver returns, so the checked ones are used."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = refusal(result["host"])
            if reason:
                raise SsrfRefused(f"{host} resolves to {result['host']}: {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()
