"""WhatsApp templates as Meta holds them (RELIABILITY S14): outside the 24-hour window a
template Meta would refuse is passed over for the next channel at once, and one Meta
classes as marketing goes only to customers with marketing consent on WhatsApp; inside
the window free text goes. What Meta says is read hourly and kept per store."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from parley.channels.base import (
    AccountChannelError,
    ChannelKind,
    SendingAccount,
    TemplateReview,
    TransientChannelError,
)
from parley.clock import utc_now
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker, WorkerConfig
from parley.messaging import whatsapp_templates
from parley.messaging.models import Message, WhatsAppTemplate
from parley.messaging.types import Purpose
from parley.messaging.whatsapp_templates import SYNC_KIND, TemplateSyncTask
from parley.workspaces.models import Workspace
from parley.workspaces.service import add_channel_account, create_workspace
from support import (
    customer_writes,
    deliveries,
    drain,
    make_worker,
    meta_holds,
    post,
    recording_adapters,
    rows,
    seed,
    shopper,
)

FRIDA = shopper("Frida").phone  # WhatsApp and SMS for order updates, no marketing
DEFAULTS = ("order_dispatched", "order_out_for_delivery", "order_delivered", "order_feedback")


def _approved(name: str, category: str = "UTILITY", status: str = "APPROVED") -> TemplateReview:
    return TemplateReview(name=name, language="en", status=status, category=category)


def _dispatch(db, adapters, first_name: str = "Frida") -> Message:
    placed, dispatched, *_ = deliveries(first_name)
    post(db, placed)
    post(db, dispatched)
    drain(make_worker(db, adapters))
    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    return dispatch


def test_an_approved_utility_template_goes_on_whatsapp(db, frozen_clock):
    seed(db)
    meta_holds(db, *(_approved(name) for name in DEFAULTS))
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert (dispatch.channel, dispatch.status, dispatch.decision) == ("whatsapp", "sent", [])
    [sent] = adapters[ChannelKind.WHATSAPP].sent
    assert sent.template is not None
    assert sent.template.name == "order_dispatched"
    assert adapters[ChannelKind.SMS].sent == []


def test_a_paused_template_is_passed_over_for_sms_with_the_reason(db, frozen_clock):
    seed(db)
    meta_holds(db, _approved("order_dispatched", status="PAUSED"))
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert (dispatch.channel, dispatch.recipient, dispatch.status) == ("sms", FRIDA, "sent")
    assert dispatch.decision == ["whatsapp: template order_dispatched (en) is paused at Meta"]
    assert adapters[ChannelKind.WHATSAPP].sent == []
    assert len(adapters[ChannelKind.SMS].sent) == 1


def test_a_template_meta_does_not_hold_is_passed_over_once_its_templates_are_read(db, frozen_clock):
    seed(db)
    meta_holds(db, _approved("order_delivered"))
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert dispatch.channel == "sms"
    assert dispatch.decision == [
        "whatsapp: template order_dispatched (en) is not among the templates approved at Meta"
    ]
    assert adapters[ChannelKind.WHATSAPP].sent == []


def test_a_store_whose_templates_were_never_read_leaves_the_template_to_meta(db, frozen_clock):
    seed(db)
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert (dispatch.channel, dispatch.status) == ("whatsapp", "sent")
    assert len(adapters[ChannelKind.WHATSAPP].sent) == 1


def test_a_template_meta_classes_as_marketing_needs_marketing_consent(db, frozen_clock):
    seed(db)
    meta_holds(db, _approved("order_dispatched", category="MARKETING"))
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert (dispatch.channel, dispatch.recipient, dispatch.status) == ("sms", FRIDA, "sent")
    assert dispatch.decision == [
        "whatsapp: template order_dispatched (en) is marketing at Meta; no marketing consent"
    ]
    assert adapters[ChannelKind.WHATSAPP].sent == []


def test_a_marketing_template_goes_to_a_customer_who_took_whatsapp_marketing(db, frozen_clock):
    seed(db)
    meta_holds(db, _approved("order_dispatched", category="MARKETING"))
    with db.transaction() as session:
        frida = session.scalar(select(Customer).where(Customer.phone == FRIDA))
        customers.record_consent(
            session,
            workspace_id=1,
            customer_id=frida.id,
            channel="whatsapp",
            purpose=Purpose.MARKETING,
            is_granted=True,
            source="WhatsApp: User signed up via signup link",
        )
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert (dispatch.channel, dispatch.status) == ("whatsapp", "sent")
    [sent] = adapters[ChannelKind.WHATSAPP].sent
    assert sent.template is not None
    assert sent.template.name == "order_dispatched"


@pytest.mark.parametrize(
    ("after", "channel", "is_template"),
    [
        pytest.param(timedelta(hours=23, minutes=59), "whatsapp", False, id="free_text_at_23h59"),
        pytest.param(timedelta(hours=24, minutes=1), "sms", None, id="refused_at_24h01"),
    ],
)
def test_free_text_goes_only_inside_the_window_that_opens_with_her_last_message(
    db, frozen_clock, after, channel, is_template
):
    # Given Frida wrote on WhatsApp at T, and Meta classes the dispatch template as marketing
    seed(db)
    meta_holds(db, _approved("order_dispatched", category="MARKETING"))
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=FRIDA, text="Hola, is it sent?")
    frozen_clock.advance(after)
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert (dispatch.channel, dispatch.status) == (channel, "sent")
    if channel == "whatsapp":
        [sent] = adapters[ChannelKind.WHATSAPP].sent
        assert sent.template is None
        assert "#" in sent.text
    else:
        assert adapters[ChannelKind.WHATSAPP].sent == []
        assert dispatch.decision == [
            "whatsapp: template order_dispatched (en) is marketing at Meta; no marketing consent"
        ]


class _Meta:
    """The business account as the sync reads it."""

    def __init__(self, *templates: TemplateReview) -> None:
        self.templates = list(templates)
        self.failure: Exception | None = None

    async def list_templates(self) -> list[TemplateReview]:
        if self.failure is not None:
            raise self.failure
        return list(self.templates)


def _sync(db, meta: _Meta) -> Worker:
    worker = Worker(db, [TemplateSyncTask(meta)], WorkerConfig(backoff_base_seconds=5.0))
    with db.transaction() as session:
        queue.enqueue(session, kind=SYNC_KIND, payload={}, idempotency_key=f"sync:{utc_now()}")
    drain(worker)
    return worker


def _held(db, workspace_id: int = 1) -> list[tuple[str, str, str]]:
    return sorted(
        (t.name, t.status, t.category)
        for t in rows(db, WhatsAppTemplate, WhatsAppTemplate.workspace_id == workspace_id)
    )


def test_the_hourly_sync_keeps_each_active_store_to_what_meta_lists(db, frozen_clock, caplog):
    # Given the demo store and an uninstalled one
    seed(db)
    with db.transaction() as session:
        session.add(
            Workspace(slug="gone", name="Gone", is_active=False, settings={}, created_at=utc_now())
        )
    gone = rows(db, Workspace, Workspace.slug == "gone")[0].id
    meta = _Meta(_approved("order_dispatched"), _approved("summer_sale", category="MARKETING"))

    _sync(db, meta)

    assert _held(db) == [
        ("order_dispatched", "APPROVED", "UTILITY"),
        ("summer_sale", "APPROVED", "MARKETING"),
    ]
    assert _held(db, gone) == []

    # When Meta re-classes the dispatch template and the sale template is deleted there
    meta.templates = [_approved("order_dispatched", category="MARKETING")]
    frozen_clock.advance(timedelta(hours=1))
    with caplog.at_level(logging.WARNING, logger="parley.messaging.whatsapp_templates"):
        _sync(db, meta)

    assert _held(db) == [("order_dispatched", "APPROVED", "MARKETING")]
    assert "order_dispatched (en): UTILITY → MARKETING" in caplog.text


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        pytest.param(
            TransientChannelError("WhatsApp could not answer (HTTP 503)"),
            JobStatus.PENDING,
            id="outage_retried",
        ),
        pytest.param(
            AccountChannelError("WhatsApp refused the settings (HTTP 401, error 190)"),
            JobStatus.FAILED,
            id="refused_token_dead_letter",
        ),
    ],
)
def test_a_sync_meta_does_not_answer_changes_nothing(db, frozen_clock, failure, status):
    seed(db)
    meta_holds(db, _approved("order_dispatched"))
    meta = _Meta()
    meta.failure = failure

    _sync(db, meta)

    [job] = rows(db, Job, Job.kind == SYNC_KIND)
    assert (job.status, job.attempts, job.last_error) == (status, 1, failure.reason)
    assert _held(db) == [("order_dispatched", "APPROVED", "UTILITY")]


def test_a_review_webhook_adds_an_approval_and_moves_a_category(db, frozen_clock):
    seed(db)
    meta_holds(db, _approved("order_dispatched"))
    with db.transaction() as session:
        added = whatsapp_templates.apply_review(
            session,
            workspace_id=1,
            review=TemplateReview(
                "back_in_stock", "en", status="APPROVED", category="MARKETING", meta_id="9"
            ),
            now=utc_now(),
        )
        moved = whatsapp_templates.apply_review(
            session,
            workspace_id=1,
            review=TemplateReview("order_dispatched", "en", category="MARKETING"),
            now=utc_now(),
        )
        unread = whatsapp_templates.apply_review(
            session,
            workspace_id=1,
            review=TemplateReview("never_read", "en", category="UTILITY"),
            now=utc_now(),
        )
        reinstated = whatsapp_templates.apply_review(
            session,
            workspace_id=1,
            review=TemplateReview("order_dispatched", "en", status="REINSTATED"),
            now=utc_now(),
        )

    assert added == "back_in_stock (en): APPROVED, MARKETING"
    assert moved == "order_dispatched (en): UTILITY → MARKETING"
    assert unread is None
    assert reinstated is None
    assert _held(db) == [
        ("back_in_stock", "APPROVED", "MARKETING"),
        ("order_dispatched", "APPROVED", "MARKETING"),
    ]


def test_another_stores_templates_are_not_read_for_this_one(db, frozen_clock):
    seed(db)
    with db.transaction() as session:
        session.add(Workspace(slug="other", name="Other", settings={}, created_at=utc_now()))
    other = rows(db, Workspace, Workspace.slug == "other")[0].id
    meta_holds(db, _approved("order_dispatched", status="PAUSED"), workspace_id=other)
    adapters = recording_adapters()

    dispatch = _dispatch(db, adapters)

    assert (dispatch.channel, dispatch.status) == ("whatsapp", "sent")
    with db.transaction() as session:
        registry = whatsapp_templates.registry_for(session, workspace_id=1)
    assert registry.is_synced is False


def _own_number(db, slug: str, address: str, **sending: str) -> int:
    """A second store with its own WhatsApp number connected, with ``sending`` fields."""
    with db.transaction() as session:
        store = create_workspace(session, slug=slug, name=slug.title())
        add_channel_account(
            session,
            workspace_id=store.id,
            channel="whatsapp",
            provider="whatsapp_cloud",
            address=address,
            secrets={"app_secret": "s", "verify_token": "v", **sending},
        )
        return store.id


class _Accounts:
    """Each store's own business account, as the sync reads it through that number."""

    def __init__(self, **listings: _Meta) -> None:
        self.listings = listings
        self.asked: list[tuple[str, str]] = []

    def lister_for(self, account: SendingAccount) -> _Meta:
        self.asked.append((account.address, account.credential("business_account_id")))
        return self.listings[account.address]


def test_a_store_sending_from_its_own_number_takes_its_own_business_accounts_templates(
    db, frozen_clock
):
    # Given the demo store on the deployment's number, north on its own number (with its
    # business account) and south on its own number (no business account given)
    seed(db)
    north = _own_number(
        db, "north", "200000000000002", access_token="t", business_account_id="2222"
    )
    south = _own_number(db, "south", "300000000000003", access_token="t")
    deployment = _Meta(_approved("order_dispatched"))
    own = _Accounts(**{"200000000000002": _Meta(_approved("north_dispatch", "MARKETING"))})
    meta_holds(db, _approved("order_dispatched"), workspace_id=south)

    worker = Worker(
        db,
        [TemplateSyncTask(deployment, lister_for=own.lister_for)],
        WorkerConfig(backoff_base_seconds=5.0),
    )
    with db.transaction() as session:
        queue.enqueue(session, kind=SYNC_KIND, payload={}, idempotency_key="sync:own")
    drain(worker)

    # Then each store holds what its own number's business account lists
    assert _held(db) == [("order_dispatched", "APPROVED", "UTILITY")]
    assert _held(db, north) == [("north_dispatch", "APPROVED", "MARKETING")]
    assert _held(db, south) == []
    assert own.asked == [("200000000000002", "2222")]
    [job] = rows(db, Job, Job.kind == SYNC_KIND)
    assert job.status == JobStatus.DONE


def test_a_store_business_account_that_refuses_the_sync_leaves_the_others_synced(db, frozen_clock):
    seed(db)
    north = _own_number(
        db, "north", "200000000000002", access_token="t", business_account_id="2222"
    )
    refusing = _Meta()
    refusing.failure = AccountChannelError("WhatsApp refused the settings (HTTP 401, error 190)")
    own = _Accounts(**{"200000000000002": refusing})

    worker = Worker(
        db,
        [TemplateSyncTask(_Meta(_approved("order_dispatched")), lister_for=own.lister_for)],
        WorkerConfig(backoff_base_seconds=5.0),
    )
    with db.transaction() as session:
        queue.enqueue(session, kind=SYNC_KIND, payload={}, idempotency_key="sync:own")
    drain(worker)

    assert _held(db) == [("order_dispatched", "APPROVED", "UTILITY")]
    assert _held(db, north) == []
    [job] = rows(db, Job, Job.kind == SYNC_KIND)
    assert (job.status, job.last_error) == (
        JobStatus.FAILED,
        "WhatsApp refused the settings (HTTP 401, error 190)",
    )
