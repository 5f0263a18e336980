"""One parley worker process for the dispatch bench (started by ``bench/dispatch.py``).

The worker is built by parley's own composition root (``parley.runtime.Runtime.worker``,
so batch size, concurrency, lease and poll interval are ``Settings``' defaults or the
``PARLEY_*`` environment), with one of two sets of adapters:

- ``--provider noop``: an in-process adapter per channel that answers a ``SendResult`` at
  once (what is left is parley: claim, policy, render, outbox rows, settle);
- ``--provider sandbox``: parley's real adapters from ``build_adapters`` pointed at a
  running ``parley serve`` with the sandbox on (Twilio and WhatsApp over HTTP, email over
  SMTP), exactly as ``parley worker`` does with ``PARLEY_SANDBOX=1``.

Modes: ``drain`` runs rounds until nothing is due (``run_until_idle``); ``serve`` runs
``run_forever`` until SIGINT/SIGTERM or ``--deadline``; ``blast`` is the sandbox ceiling:
the same adapters send the messages already stored in ``--db-url`` with the worker's
concurrency and no database work at all. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import benchkit

from parley.channels.base import Capabilities, ChannelKind, OutboundMessage, SendResult


@dataclass
class NoopAdapter:
    """Accepts every message at once, like a provider with zero latency."""

    kind: ChannelKind
    capabilities: Capabilities
    provider: ClassVar[str] = "noop"
    sent: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count()

    @classmethod
    def from_settings(cls, settings: Any) -> NoopAdapter:
        raise NotImplementedError

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent += 1
        return SendResult(provider_message_id=f"noop-{self.kind}-{next(self._ids)}")

    async def aclose(self) -> None:
        return None


def noop_adapters() -> dict[ChannelKind, Any]:
    from parley.channels.registry import ADAPTERS

    return {kind: NoopAdapter(kind, cls.capabilities) for kind, cls in ADAPTERS.items()}


def sandbox_settings(port: int, smtp_port: int) -> Any:
    from parley.settings import Settings

    return Settings(
        host="127.0.0.1", port=port, sandbox=True, sandbox_smtp_port=smtp_port
    ).pointed_at_sandbox()


async def run_worker(opts: argparse.Namespace) -> dict[str, Any]:
    import benchkit

    from parley.channels.registry import build_adapters
    from parley.db import Database
    from parley.runtime import Runtime, tune_garbage_collector
    from parley.settings import Settings

    if opts.provider == "sandbox":
        settings = sandbox_settings(opts.sandbox_port, opts.sandbox_smtp_port)
        adapters = build_adapters(settings)
    else:
        settings = Settings()
        adapters = noop_adapters()
    settings = settings.model_copy(
        update={"database_url": opts.db_url, **benchkit.paced_at(opts.pace)}
    )
    db_options = {}
    if hasattr(settings, "sqlite_synchronous"):  # the durability parley's runtime would use
        db_options["sqlite_synchronous"] = settings.sqlite_synchronous
    runtime = Runtime(settings=settings, db=Database(opts.db_url, **db_options), adapters=adapters)
    worker = runtime.worker(name=f"bench-{opts.name}-{os.getpid()}")
    tune_garbage_collector()  # as ``parley worker`` does
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    if opts.start_at:
        await asyncio.sleep(max(0.0, opts.start_at - time.time()))
    cpu0 = time.process_time()
    t0 = time.time()
    handled = None
    try:
        if opts.mode == "drain":
            handled = await asyncio.wait_for(worker.run_until_idle(), opts.deadline)
        else:
            loop.call_later(opts.deadline, worker.stop)
            claimed = [0]
            run_once = worker.run_once

            async def counted() -> int:
                n = await run_once()
                claimed[0] += n
                return n

            worker.run_once = counted  # type: ignore[method-assign]
            await worker.run_forever()
            handled = claimed[0]
    finally:
        t1 = time.time()
        cpu = time.process_time() - cpu0
        await runtime.aclose()
    return {
        "name": opts.name,
        "mode": opts.mode,
        "provider": opts.provider,
        "handled": handled,
        "t0": t0,
        "t1": t1,
        "cpu_seconds": cpu,
        "config": {
            "batch_size": worker.config.batch_size,
            "concurrency": settings.worker_concurrency,
            "poll_seconds": settings.worker_poll_seconds,
        },
    }


def stored_messages(url: str) -> list[tuple[str, OutboundMessage]]:
    """The messages parley stored in an earlier drain, as the outbox would hand them over."""
    from sqlalchemy import select

    from parley.channels.base import TemplateRef
    from parley.db import Database
    from parley.messaging.models import Message

    db = Database(url)
    try:
        with db.transaction() as session:
            rows = session.scalars(select(Message).where(Message.channel.is_not(None))).all()
            out = []
            for m in rows:
                template = None
                if m.template:
                    template = TemplateRef(
                        name=m.template["name"],
                        language=m.template["language"],
                        body_parameters=tuple(m.template["parameters"]),
                    )
                out.append(
                    (
                        str(m.channel),
                        OutboundMessage(
                            idempotency_key=f"blast-{m.workspace_id}-{m.id}",
                            to=m.recipient or "",
                            text=m.body or "",
                            subject=m.subject,
                            html=m.html,
                            template=template,
                            headers=dict(m.headers or {}),
                        ),
                    )
                )
            return out
    finally:
        db.dispose()


async def run_blast(opts: argparse.Namespace) -> dict[str, Any]:
    from parley.channels.registry import build_adapters, close_adapters

    settings = sandbox_settings(opts.sandbox_port, opts.sandbox_smtp_port)
    adapters = build_adapters(settings)
    messages = stored_messages(opts.db_url)
    if opts.channel:
        messages = [(c, m) for c, m in messages if c == opts.channel][: opts.limit or None]
    slots = asyncio.Semaphore(settings.worker_concurrency)
    errors: dict[str, int] = {}

    async def send(channel: str, message: OutboundMessage) -> None:
        async with slots:
            try:
                await adapters[ChannelKind(channel)].send(message)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    if opts.start_at:
        await asyncio.sleep(max(0.0, opts.start_at - time.time()))
    cpu0 = time.process_time()
    t0 = time.time()
    await asyncio.gather(*(send(channel, message) for channel, message in messages))
    t1 = time.time()
    cpu = time.process_time() - cpu0
    await close_adapters(adapters)
    return {
        "mode": "blast",
        "handled": len(messages) - sum(errors.values()),
        "errors": errors,
        "t0": t0,
        "t1": t1,
        "cpu_seconds": cpu,
        "by_channel": {
            c: sum(1 for ch, _ in messages if ch == c) for c in {ch for ch, _ in messages}
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="one parley worker for the dispatch bench")
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--mode", choices=("drain", "serve", "blast"), default="drain")
    parser.add_argument("--provider", choices=("noop", "sandbox"), default="noop")
    parser.add_argument("--sandbox-port", type=int, default=8000)
    parser.add_argument("--sandbox-smtp-port", type=int, default=8025)
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch seconds to start at")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds, then stop")
    parser.add_argument("--name", default="w")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="messages (SMS segments) a second every sender takes; 0: senders not paced",
    )
    parser.add_argument("--cpu", default=None)
    parser.add_argument("--channel", default="", help="blast: only this channel's messages")
    parser.add_argument("--limit", type=int, default=0, help="blast: at most this many")
    opts = parser.parse_args()
    benchkit.pin(opts.cpu)
    import logging

    logging.basicConfig(level=logging.WARNING)
    # No uvloop: ``parley worker`` runs on asyncio's default loop, and so does this.
    coro = run_blast(opts) if opts.mode == "blast" else run_worker(opts)
    result = asyncio.run(coro)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
