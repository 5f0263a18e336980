"""Is the sending domain set up as mailbox providers require of bulk senders? (RELIABILITY
S12.)

Since February 2024 Gmail and Yahoo refuse or spam-folder bulk mail (about 5,000 a day to
Gmail; a sender keeps that status) from a domain without SPF, DKIM and a DMARC policy,
with the From address aligned to what they authenticate. A store's promotion is bulk mail
in their eyes, so parley reads the From domain's records from DNS before sending it:

- **SPF**: exactly one ``v=spf1`` TXT record at the From domain (two is an error to
  receivers, RFC 7208 §3.2). parley sends with the From address as the envelope sender,
  so an SPF pass is aligned with From by construction.
- **DKIM**: a key at ``<selector>._domainkey.<domain>`` for the selector the relay signs
  with (``EMAIL_DKIM_SELECTOR``), not revoked (an empty ``p=``). A key published under the
  From domain signs as that domain: aligned.
- **DMARC**: one ``v=DMARC1`` record with a policy (``p=none``, ``quarantine`` or
  ``reject``) at ``_dmarc.<domain>``, or else at the organisational domain's (RFC 7489
  §6.6.3; the organisational domain from the Public Suffix List, which
  ``publicsuffixlist`` ships, so nothing is downloaded).

The domain's own TXT records are also where a store proves a domain is its before its
email goes from it: ``parley-verification=<its token>`` (:attr:`SendingDomain.verifications`,
read in the same answer as SPF; :mod:`parley.messaging.email_sender`).

Records are read with dnspython's asynchronous resolver, from the system's resolvers or
the ``DNS_NAMESERVERS`` given (the sandbox's stand-in in the demo). The rules are the few
lines of :func:`_problems`; ``checkdmarc`` would read the same records but brings an HTTP
client, ``requests`` and XML parsing with it for reports parley does not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
from publicsuffixlist import PublicSuffixList

from parley.channels.base import TransientChannelError
from parley.settings import Settings

POLICIES = ("none", "quarantine", "reject")
VERIFICATION_PREFIX = "parley-verification="


@dataclass(frozen=True)
class SendingDomain:
    """What DNS says of one sending domain, and what in it falls short (none: ready)."""

    domain: str
    spf: tuple[str, ...]
    dkim_selector: str | None
    dkim: tuple[str, ...]
    dmarc_at: str
    dmarc: tuple[str, ...]
    verifications: tuple[str, ...] = ()
    """The tokens of ``parley-verification=<token>`` records at the domain: the stores that
    proved it is theirs."""

    @property
    def problems(self) -> list[str]:
        return _problems(self)

    @property
    def is_ready(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        """One line for ``parley providers check``."""
        if self.is_ready:
            return (
                f"sending domain {self.domain}: SPF, DKIM ({self.dkim_selector}) and DMARC "
                f"({_policy(self.dmarc[0])}) in place"
            )
        return f"sending domain {self.domain}: " + "; ".join(self.problems)


def _problems(found: SendingDomain) -> list[str]:
    problems = []
    if not found.spf:
        problems.append(f"no SPF record (v=spf1) at {found.domain}")
    elif len(found.spf) > 1:
        problems.append(
            f"{len(found.spf)} SPF records at {found.domain}: receivers treat that as an error"
        )
    if found.dkim_selector is None:
        problems.append(
            "DKIM not checked: set EMAIL_DKIM_SELECTOR to the selector your relay signs with"
        )
    else:
        name = f"{found.dkim_selector}._domainkey.{found.domain}"
        keys = [record for record in found.dkim if _tag(record, "p") is not None]
        if not keys:
            problems.append(f"no DKIM key at {name}")
        elif not any(_tag(record, "p") for record in keys):
            problems.append(f"the DKIM key at {name} is revoked (empty p=)")
    if not found.dmarc:
        where = f"_dmarc.{found.domain}"
        if found.dmarc_at != found.domain:
            where += f" or _dmarc.{found.dmarc_at}"
        problems.append(f"no DMARC record (v=DMARC1) at {where}")
    elif len(found.dmarc) > 1:
        problems.append(
            f"{len(found.dmarc)} DMARC records at _dmarc.{found.dmarc_at}: none applies"
        )
    elif _policy(found.dmarc[0]) not in POLICIES:
        problems.append(
            f"the DMARC record at _dmarc.{found.dmarc_at} has no valid policy "
            "(p=none, quarantine or reject)"
        )
    return problems


def _tag(record: str, name: str) -> str | None:
    """One tag's value of a ``tag=value; ...`` record (DKIM, DMARC), or None."""
    for part in record.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _policy(record: str) -> str:
    return (_tag(record, "p") or "").lower()


class DnsUnavailable(TransientChannelError):
    """No resolver answered: nothing is known of the domain this time."""


async def check_domain(
    domain: str, *, dkim_selector: str | None, resolver: dns.asyncresolver.Resolver
) -> SendingDomain:
    """Read the domain's SPF, DKIM and DMARC records (DnsUnavailable when DNS does not
    answer)."""
    domain = domain.lower().rstrip(".")
    at_domain = await _txt(resolver, domain)
    spf = _starting(at_domain, "v=spf1")
    verifications = tuple(
        record[len(VERIFICATION_PREFIX) :].strip()
        for record in _starting(at_domain, VERIFICATION_PREFIX)
    )
    dkim: tuple[str, ...] = ()
    if dkim_selector:
        dkim = await _txt(resolver, f"{dkim_selector}._domainkey.{domain}")
    dmarc_at = domain
    dmarc = _starting(await _txt(resolver, f"_dmarc.{domain}"), "v=dmarc1")
    organisational = _suffixes().privatesuffix(domain) or domain
    if not dmarc and organisational != domain:
        dmarc_at = organisational
        dmarc = _starting(await _txt(resolver, f"_dmarc.{organisational}"), "v=dmarc1")
    return SendingDomain(domain, spf, dkim_selector or None, dkim, dmarc_at, dmarc, verifications)


def _starting(records: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    return tuple(record for record in records if record.lower().startswith(prefix))


async def _txt(resolver: dns.asyncresolver.Resolver, name: str) -> tuple[str, ...]:
    """The TXT records at ``name``, each one string (a long record comes in pieces)."""
    try:
        answer = await resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return ()
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        raise DnsUnavailable(f"DNS did not answer for {name}: {exc}") from exc
    return tuple(b"".join(record.strings).decode("utf-8", errors="replace") for record in answer)


def make_resolver(nameservers: list[str], *, timeout: float) -> dns.asyncresolver.Resolver:
    """dnspython's resolver over ``nameservers`` (``host`` or ``host:port``), or the
    system's when none are given."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [_nameserver(entry) for entry in nameservers]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = timeout
    return resolver


def _nameserver(entry: str) -> dns.nameserver.Nameserver:
    host, colon, port = entry.rpartition(":")
    if not colon or ":" in host:  # no port, or a bare IPv6 address
        return dns.nameserver.Do53Nameserver(entry)
    return dns.nameserver.Do53Nameserver(host, int(port))


async def check_sending_domain(
    settings: Settings, domain: str, dkim_selector: str | None = None
) -> SendingDomain:
    """:func:`check_domain` with the deployment's resolvers: for its From domain, with
    its DKIM selector, or for a store's own domain with the store's selector."""
    return await check_domain(
        domain,
        dkim_selector=dkim_selector or settings.email_dkim_selector or None,
        resolver=make_resolver(settings.nameservers(), timeout=settings.provider_timeout_seconds),
    )


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()
