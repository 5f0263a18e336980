"""The composition root: builds the database, channel adapters and worker from Settings.

Only the CLI and the HTTP app factory call this; the domain never reads settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from parley.channels.base import ChannelAdapter, ChannelKind
from parley.channels.registry import build_adapters, close_adapters
from parley.db import Database
from parley.db.migrate import migrate
from parley.jobs.worker import Task, Worker, WorkerConfig
from parley.journeys.engine import AdvanceJourney
from parley.messaging.service import OutboxSettings
from parley.messaging.templates import TemplateRenderer
from parley.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    adapters: dict[ChannelKind, ChannelAdapter]

    def tasks(self) -> list[Task]:
        return [
            AdvanceJourney(
                adapters=self.adapters,
                renderer=TemplateRenderer(),
                outbox_settings=OutboxSettings(
                    public_url=self.settings.resolved_public_url(),
                    secret_key=self.settings.secret_key,
                ),
                send_timeout_seconds=self.settings.provider_timeout_seconds,
            )
        ]

    def worker(self, *, name: str | None = None) -> Worker:
        settings = self.settings
        return Worker(
            self.db,
            self.tasks(),
            WorkerConfig(
                batch_size=settings.worker_batch_size,
                concurrency=settings.worker_concurrency,
                lease=timedelta(seconds=settings.job_lease_seconds),
                poll_seconds=settings.worker_poll_seconds,
                backoff_base_seconds=settings.job_backoff_base_seconds,
                backoff_cap_seconds=settings.job_backoff_cap_seconds,
                max_attempts=settings.job_max_attempts,
            ),
            name=name,
        )

    async def aclose(self) -> None:
        await close_adapters(self.adapters)
        self.db.dispose()


def build_runtime(settings: Settings, *, run_migrations: bool = False) -> Runtime:
    """Connect to the database (migrating it first when asked) and build the adapters."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every SMTP command at INFO: the sandbox's mail server is not news.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    if run_migrations:
        migrate(settings.database_url)
    return Runtime(
        settings=settings,
        db=Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous),
        adapters=build_adapters(settings),
    )
