"""The composition root: builds the database, channel adapters and worker from Settings.

Only the CLI and the HTTP app factory call this; the domain never reads settings.
"""

from __future__ import annotations

import functools
import gc
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import httpx2

from parley.alerts.notify import NotifyTask
from parley.alerts.rules import Thresholds
from parley.alerts.watch import WatchTask, watch_schedule
from parley.assistant.llm import Rephraser
from parley.assistant.service import Respond
from parley.channels.adapters import ChannelAdapters
from parley.channels.base import ChannelAdapter, ChannelKind, SendingAccount
from parley.channels.email_smtp.domain import SendingDomain, check_sending_domain
from parley.channels.http import make_client
from parley.channels.registry import build_account_adapter, build_adapters, close_adapters
from parley.channels.twilio_sms.segments import count_segments
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud
from parley.db import Database
from parley.db.migrate import migrate
from parley.housekeeping import BUDGET_SECONDS, SWEEP_SCHEDULE, Retention, SweepTask
from parley.http.intake import Intake
from parley.inbox.tasks import ApplyStatusLater
from parley.jobs.periodic import Schedule
from parley.jobs.worker import Task, Worker, WorkerConfig
from parley.journeys.engine import AdvanceJourney
from parley.messaging.delivery import DeliverMessage
from parley.messaging.pace import Allowance, Pacer, Sender, one_unit
from parley.messaging.sending_domain import CHECK_SCHEDULE, DomainCheckTask
from parley.messaging.service import OutboxSettings
from parley.messaging.templates import TemplateRenderer
from parley.messaging.whatsapp_templates import SYNC_SCHEDULE as TEMPLATE_SYNC_SCHEDULE
from parley.messaging.whatsapp_templates import TemplateLister, TemplateSyncTask
from parley.privacy.tasks import CustomerRequestTask, EraseStoreTask
from parley.settings import Settings

# A worker reads a claimed batch in bulk and prepares it, a burst of CPU and, on SQLite,
# a hold on the one writer. Beside the web server a webhook waits behind each burst and
# its round's sends: 20 jobs a round is some 5-10 ms, 200 were hundreds (bench/ingest.py,
# memory phase: p99 7.9 s on SQLite, p50 176 -> 89 ms on PostgreSQL; read once and
# prepared 20 to a transaction, still 106-118 -> 170-244 ms on SQLite). So there a round
# claims 20 while webhooks arrive, and 200 once none has for QUIET_SECONDS: a campaign
# from a quiet store goes out at a worker's full rate, and the first webhook after the
# quiet waits for a chunk. A worker of its own claims 200. Rounds of 200 are prepared 20
# to a transaction on SQLite and beside the web server, so a webhook (of this process or
# another) waits for a chunk, not the whole round.
SMALL_BATCH_SIZE = 20
LARGE_BATCH_SIZE = 200
PREPARE_CHUNK = 20
QUIET_SECONDS = 2.0

# Python collects its young objects every 700 net allocations of containers, and every
# hundredth time the whole heap: the assistant's model, every imported module. A worker's
# batch loads hundreds of ORM objects, so it set that off again and again: a journey job
# with a no-op provider spent 0.133 ms of CPU in 107 collections per 850 jobs with the
# defaults, 0.007 ms in 5 with the start-up heap frozen and this threshold
# (``bench/sqlcount.py --db postgres``, with and without ``--default-gc``).
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Set up the collector for a long-running process (``serve``, ``worker``), once its
    modules are loaded: what exists now lives as long as the process, so it is frozen out
    of every later collection, and young collections run less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def pacer(settings: Settings) -> Pacer:
    """The deployment's senders, each paced to what its provider takes (0: not paced).
    SMS is counted in segments, as carriers and Twilio count a number's throughput."""
    senders = {
        ChannelKind.WHATSAPP: (
            f"whatsapp:{settings.whatsapp_phone_number_id}",
            settings.whatsapp_messages_per_second,
            "message",
            one_unit,
        ),
        ChannelKind.SMS: (
            f"sms:{settings.twilio_from_number}",
            settings.twilio_segments_per_second,
            "SMS segment",
            count_segments,
        ),
        ChannelKind.INSTAGRAM: (
            f"instagram:{settings.instagram_account_id}",
            settings.instagram_messages_per_second,
            "message",
            one_unit,
        ),
        ChannelKind.EMAIL: (
            f"email:{settings.smtp_username or settings.smtp_host}",
            settings.smtp_messages_per_second,
            "message",
            one_unit,
        ),
    }
    return Pacer(
        {
            channel: Sender(
                key,
                Allowance(rate, burst=max(1.0, rate * settings.send_burst_seconds)),
                unit=unit,
                cost=cost,
            )
            for channel, (key, rate, unit, cost) in senders.items()
            if rate > 0
        }
    )


def thresholds(settings: Settings) -> Thresholds:
    """When the alerts watch fires (0 turns an alert off)."""
    return Thresholds(
        late_seconds=settings.alert_late_seconds,
        dead_letter_window=timedelta(minutes=settings.alert_dead_letter_minutes),
        privacy_after=timedelta(days=settings.alert_privacy_days),
    )


def retention(settings: Settings) -> Retention:
    """How long the housekeeping sweep keeps raw deliveries and finished jobs."""
    return Retention(
        webhooks=timedelta(days=settings.webhook_retention_days),
        finished_jobs=timedelta(days=settings.job_retention_days),
    )


@dataclass
class Runtime:
    settings: Settings
    db: Database
    adapters: dict[ChannelKind, ChannelAdapter]
    rephraser: Rephraser | None = None
    _respond: Respond | None = None
    _alert_client: httpx2.AsyncClient | None = None
    _senders: ChannelAdapters | None = None

    @property
    def senders(self) -> ChannelAdapters:
        """The deployment's adapters and the stores' own accounts', one set per process."""
        if self._senders is None:
            self._senders = ChannelAdapters(
                self.adapters, build=functools.partial(build_account_adapter, self.settings)
            )
        return self._senders

    def respond_task(self) -> Respond:
        """One assistant per process: its model is loaded once and shared by workers."""
        if self._respond is None:
            self._respond = Respond(
                model_dir=self.settings.assistant_model_dir,
                confidence_floor=self.settings.assistant_confidence_floor,
                rephraser=self.rephraser,
            )
        return self._respond

    def tasks(self) -> list[Task]:
        outbox_settings = OutboxSettings(
            public_url=self.settings.resolved_public_url(),
            secret_key=self.settings.secret_key,
            sending_domain=self.settings.sending_domain(),
        )
        timeout = self.settings.provider_timeout_seconds
        paced = pacer(self.settings)
        # A part of a long deletion stays well inside a job's lease.
        budget = min(BUDGET_SECONDS, self.settings.job_lease_seconds / 3)
        return [
            AdvanceJourney(
                adapters=self.senders,
                renderer=TemplateRenderer(),
                outbox_settings=outbox_settings,
                send_timeout_seconds=timeout,
                pacer=paced,
            ),
            DeliverMessage(
                adapters=self.senders,
                outbox_settings=outbox_settings,
                send_timeout_seconds=timeout,
                pacer=paced,
            ),
            ApplyStatusLater(),
            self.respond_task(),
            SweepTask(
                self.db,
                retention(self.settings),
                budget_seconds=budget,
            ),
            WatchTask(
                thresholds(self.settings), notify=self.settings.alert_webhook_url is not None
            ),
            NotifyTask(
                self.settings.alert_webhook_url,
                self.alert_client(),
                source=self.settings.resolved_public_url(),
            ),
            CustomerRequestTask(self.db, budget_seconds=budget),
            EraseStoreTask(self.db, budget_seconds=budget),
            TemplateSyncTask(self._template_lister(), lister_for=self._account_lister),
            # The From domain's and the stores' own, read hourly unless EMAIL_DOMAIN_CHECK is off.
            *(
                [DomainCheckTask(self._read_domain, domain)]
                if (domain := self.settings.sending_domain())
                else []
            ),
        ]

    async def _read_domain(self, domain: str, dkim_selector: str | None) -> SendingDomain:
        return await check_sending_domain(self.settings, domain, dkim_selector)

    def _template_lister(self) -> WhatsappCloud | None:
        """The adapter that reads the WhatsApp templates' standing from Meta: only with
        the business account's id, and the real adapter to ask."""
        adapter = self.adapters.get(ChannelKind.WHATSAPP)
        if self.settings.whatsapp_business_account_id and isinstance(adapter, WhatsappCloud):
            return adapter
        return None

    def _account_lister(self, account: SendingAccount) -> TemplateLister:
        """What reads the templates of a store's own WhatsApp business account: the
        adapter its messages go through."""
        return cast("TemplateLister", self.senders.for_account(account))

    def alert_client(self) -> httpx2.AsyncClient:
        """One client for alert notifications, closed with the runtime."""
        if self._alert_client is None:
            self._alert_client = make_client(self.settings.provider_timeout_seconds)
        return self._alert_client

    def worker_config(self, *, beside_web: bool = False) -> WorkerConfig:
        """The worker's settings; ``beside_web`` for the one ``parley serve`` embeds."""
        settings = self.settings
        chunked = beside_web or not self.db.is_postgres
        chosen = settings.worker_batch_size
        return WorkerConfig(
            batch_size=chosen or (SMALL_BATCH_SIZE if beside_web else LARGE_BATCH_SIZE),
            quiet_batch_size=LARGE_BATCH_SIZE if beside_web and chosen is None else None,
            prepare_chunk=settings.worker_prepare_chunk or (PREPARE_CHUNK if chunked else None),
            concurrency=settings.worker_concurrency,
            lease=timedelta(seconds=settings.job_lease_seconds),
            poll_seconds=settings.worker_poll_seconds,
            backoff_base_seconds=settings.job_backoff_base_seconds,
            backoff_cap_seconds=settings.job_backoff_cap_seconds,
            max_attempts=settings.job_max_attempts,
            rounds_in_flight=settings.worker_rounds_in_flight or (1 if beside_web else 2),
        )

    def schedules(self) -> list[Schedule]:
        """The periodic jobs every worker schedules: the sweep, the alerts watch, reading
        the WhatsApp templates (the deployment's business account's when it is known, and
        those of stores sending from their own numbers), and reading the sending domain's
        set-up unless that check is off."""
        schedules = [
            SWEEP_SCHEDULE,
            watch_schedule(timedelta(seconds=self.settings.alert_check_seconds)),
            TEMPLATE_SYNC_SCHEDULE,
        ]
        if self.settings.sending_domain() is not None:
            schedules.append(CHECK_SCHEDULE)
        return schedules

    def worker(self, *, name: str | None = None, intake: Intake | None = None) -> Worker:
        """A worker for every task; with ``intake``, one that runs beside the web server
        and gives way to the deliveries it is taking in. The assistant's model is loaded
        (built on the very first run) here, before any job, so no customer waits for it."""
        _ = self.respond_task().classifier
        return Worker(
            self.db,
            self.tasks(),
            self.worker_config(beside_web=intake is not None),
            name=name,
            give_way=intake.give_way if intake is not None else None,
            quiet=(lambda: intake.quiet_for(QUIET_SECONDS)) if intake is not None else None,
            schedules=self.schedules(),
        )

    async def aclose(self) -> None:
        if self._senders is not None:
            await self._senders.aclose()
        else:
            await close_adapters(self.adapters)
        if self._alert_client is not None:
            await self._alert_client.aclose()
        if self.rephraser is not None:
            await self.rephraser.aclose()
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
    rephraser = None
    if settings.assistant_llm_url:
        rephraser = Rephraser(
            base_url=settings.assistant_llm_url,
            model=settings.assistant_llm_model,
            api_key=settings.assistant_llm_api_key,
            timeout=settings.assistant_llm_timeout_seconds,
        )
    return Runtime(
        settings=settings,
        db=Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous),
        adapters=build_adapters(settings),
        rephraser=rephraser,
    )
