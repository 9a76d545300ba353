"""Zeroconf (mDNS) announcement of the Wyoming listener, so Home Assistant discovers it.

Home Assistant browses ``_wyoming._tcp.local.`` and offers every instance it finds
as a Wyoming integration. The ``wyoming`` package has a helper for this, but it
announces on every interface whatever the listener's address, guesses the address
by routing a packet, and has no way to withdraw the record; this one announces
the address the listener actually has (only on that interface when it is a
specific one, so a loopback listener never multicasts onto the network) and
unregisters on shutdown so the entry disappears at once.
"""

from __future__ import annotations

import ipaddress
import socket

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

SERVICE_TYPE = "_wyoming._tcp.local."


def _primary_address() -> str:
    """The address other hosts reach us at, for a listener on every interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(("224.0.0.251", 5353))  # no packet is sent by connect()
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class Announcement:
    """One registered ``_wyoming._tcp`` service for ``host:port``."""

    def __init__(self, name: str | None, host: str, port: int) -> None:
        wildcard = host in ("", "0.0.0.0", "::")
        if not wildcard and host == "localhost":
            host = "127.0.0.1"
        self.address = _primary_address() if wildcard else host
        ipaddress.IPv4Address(self.address)  # mDNS records here are IPv4 (A records)
        self.interfaces: InterfaceChoice | list[str] = (
            InterfaceChoice.All if wildcard else [self.address]
        )
        self.name = name or f"orate-{socket.gethostname().split('.')[0]}"
        self.port = port
        self.info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.address)],
            port=port,
            properties={"program": "orate"},
            server=f"{self.name}.local.",
        )
        self._zc: AsyncZeroconf | None = None

    async def start(self) -> None:
        self._zc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        await self._zc.async_register_service(self.info)

    async def stop(self) -> None:
        if self._zc is None:
            return
        try:
            await self._zc.async_unregister_service(self.info)
        finally:
            await self._zc.async_close()
            self._zc = None
