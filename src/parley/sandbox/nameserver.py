"""The sandbox's DNS: an authoritative stand-in for the demo's sending domain, over UDP.

parley reads the sending domain's SPF, DKIM and DMARC records before it sends marketing
email (:mod:`parley.channels.email_smtp.domain`). In the demo that domain is invented, so
the sandbox answers for it as a real nameserver would, on the same wire format, and the
demo's settings point the resolver here (``DNS_NAMESERVERS``): the check runs the same
code as in production. Queries are parsed and answered with dnspython; a name not in the
zone is NXDOMAIN, a name with no records of the type asked has an empty answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from functools import cache
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns.rdtypes.ANY.TXT import TXT

logger = logging.getLogger(__name__)

TTL = 300


def demo_zone(domain: str, *, dkim_selector: str) -> dict[str, list[str]]:
    """The TXT records a well set-up sending domain publishes: SPF allowing the sandbox's
    relay, a DKIM key (an RSA public key made for the process) for the selector, and a
    DMARC policy."""
    return {
        domain: ["v=spf1 ip4:127.0.0.1 -all"],
        f"{dkim_selector}._domainkey.{domain}": [f"v=DKIM1; k=rsa; p={_dkim_key()}"],
        f"_dmarc.{domain}": [f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"],
    }


@cache
def _dkim_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


class SandboxNameserver:
    """Answers TXT queries from ``zone`` (name → records); :meth:`start`, then :meth:`stop`.
    ``zone`` is kept, not copied, and may be changed while it runs (tests take records
    away; the sandbox's ``/api/dns`` publishes a store's)."""

    def __init__(self, zone: dict[str, list[str]], host: str = "127.0.0.1", port: int = 8053):
        for name in list(zone):
            key = name.lower().rstrip(".")
            if key != name:
                zone[key] = zone.pop(name)
        self.zone = zone
        self.host = host
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: any free one, then in :attr:`port`)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Answering(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        logger.info("sandbox DNS answering on %s:%d (udp)", self.host, self.port)

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query, or None for something that is not one."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        records = self.zone.get(name)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and records:
            answer = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            for record in records:
                answer.add(TXT(dns.rdataclass.IN, dns.rdatatype.TXT, _strings(record)), ttl=TTL)
            response.answer.append(answer)
        return response.to_wire()


def _strings(record: str) -> list[bytes]:
    """A TXT record as the strings of at most 255 *bytes* each it travels in: split by
    characters, a record holding a multi-byte character (a curly quote pasted with a
    key) overflows a string and no answer can be built for its name."""
    data = record.encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


class _Answering(asyncio.DatagramProtocol):
    def __init__(self, server: SandboxNameserver) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        response = self.server.answer(data)
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)
