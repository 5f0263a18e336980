"""The customer sidebar: profile, identities, consent, orders, scheduled sends, and the
agent's merges, unmerges and cancellations, each scoped to the agent's workspace."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from parley.accounts.models import AuditEntry, User
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.commerce.models import Fulfillment, Order
from parley.customers import merges
from parley.customers.models import Customer, CustomerIdentity, CustomerMerge
from parley.jobs.models import Job, JobStatus
from parley.journeys.models import JourneyRun, RunStatus
from parley.live.models import LiveEvent
from parley.messaging import marketing_controls
from parley.messaging.marketing_controls import Actor
from parley.messaging.models import Message, MessageStatus
from parley.workspaces.models import Workspace
from support import (
    all_adapters,
    count,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    post,
    rows,
    to_lane,
)
from web_support import AGENT, browser, seed_team, sign_in, web_app

ADA_PHONE = "+447911123456"
SATISFACTION = Message.message_type == "satisfaction_check"


@pytest.fixture
def team(db, frozen_clock):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def _ada_with_a_delivered_order(db, tmp_path, *, slug: str = "demo"):
    """Ada's order #1501 delivered, her satisfaction check waiting, and her WhatsApp chat."""
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    for delivery in deliveries("Ada"):
        post(db, delivery, slug=slug)
    drain(worker)
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="hello", slug=slug
    )
    return received, worker, adapters


def _agent_name(db) -> str:
    [agent] = rows(db, User, User.email == AGENT)
    return agent.name


def _sidebar(client, conversation_id: int):
    return client.get(f"/inbox/{conversation_id}/_sidebar", headers={"accept": "text/html"})


def _section(html: str, name: str) -> str:
    found = re.search(rf'<section class="sb-card" data-test="{name}".*?</section>', html, re.S)
    assert found, f"no {name} section"
    return found.group(0)


def _pending_satisfaction_job(db) -> Job:
    [job] = rows(
        db, Job, Job.kind == "journeys.advance", Job.status == JobStatus.PENDING, order_by=None
    )
    return job


def test_sidebar_shows_identities_consent_orders_tracking_and_upcoming(
    app, db, frozen_clock, tmp_path
):
    received, _, _ = _ada_with_a_delivered_order(db, tmp_path)
    job = _pending_satisfaction_job(db)

    with browser(app) as client:
        sign_in(client, AGENT)
        page = _sidebar(client, received.conversation_id)

    assert page.status_code == 200
    html = page.text
    assert (
        f'data-refresh="/inbox/{received.conversation_id}/_sidebar" '
        f'data-conversation-id="{received.conversation_id}"'
    ) in html
    assert '<h2 class="sb-name" data-test="customer-name">Ada Lovelace</h2>' in html
    assert '<dd data-test="shopify-id">7001</dd>' in html
    assert "Europe/London" in html
    identities = _section(html, "identities")
    assert re.findall(r'data-kind="(\w+)"', identities) == ["shopify", "email", "phone", "whatsapp"]
    assert ">ada@example.com<" in identities
    assert ">+447911123456<" in identities
    consent = _section(html, "consent")
    whatsapp = re.search(r'data-test="consent-whatsapp-transactional">.*?</li>', consent, re.S)
    assert whatsapp
    assert "granted" in whatsapp.group(0)
    assert "demo seed: opt-in at checkout" in whatsapp.group(0)
    assert 'data-test="consent-email-marketing"' in consent
    orders = _section(html, "orders")
    assert "<strong>#1501</strong>" in orders
    assert '<span class="badge ok">paid</span>' in orders
    assert '<span class="badge ok">shipped</span>' in orders
    assert '<li><span class="sb-qty">1 &times;</span> Linen Camp Shirt</li>' in orders
    assert '<span class="sb-carrier">UPS</span>' in orders
    assert (
        '<a href="https://www.ups.com/track?tracknum=1Z999AA100001501" rel="noopener noreferrer" '
        'target="_blank" data-test="tracking-link">1Z999AA100001501</a>'
    ) in orders
    assert ">delivered<" in orders
    upcoming = _section(html, "upcoming")
    assert f'data-job-id="{job.id}"' in upcoming
    assert "<strong>Satisfaction check</strong>" in upcoming
    assert "satisfaction check · step 2 of 2" in upcoming
    assert "due in 1 d · 03 Mar 2026, 10:00 UTC" in upcoming
    assert f'action="/customers/{received.customer_id}/upcoming/{job.id}/cancel"' in upcoming
    assert upcoming.count('data-test="cancel-upcoming"') == 1
    assert 'data-test="merges"' in html
    assert "loyalty" not in html.lower()
    assert "recommendation" not in html.lower()


def test_a_scheduled_send_held_back_says_what_it_waits_for(app, db, frozen_clock, tmp_path):
    to_lane(db, "satisfaction_check", "marketing")
    received, worker, _ = _ada_with_a_delivered_order(db, tmp_path)
    with db.transaction() as session:
        marketing_controls.set_paused(
            session,
            session.get_one(Workspace, 1),
            paused=True,
            actor=Actor("admin@demo.parley.test"),
            now=utc_now(),
        )
    frozen_clock.advance(timedelta(days=1, minutes=1))
    drain(worker)
    job = _pending_satisfaction_job(db)

    with browser(app) as client:
        sign_in(client, AGENT)
        upcoming = _section(_sidebar(client, received.conversation_id).text, "upcoming")

    assert job.waiting_for == "marketing_paused"
    assert count(db, Message, SATISFACTION) == 0
    assert f'data-job-id="{job.id}"' in upcoming
    assert (
        '<span class="hint sb-note" data-test="held">'
        "Held back: waiting for the store to resume marketing</span>"
    ) in upcoming


def test_a_scheduled_send_not_yet_due_says_nothing_of_being_held(app, db, frozen_clock, tmp_path):
    received, _, _ = _ada_with_a_delivered_order(db, tmp_path)

    with browser(app) as client:
        sign_in(client, AGENT)
        upcoming = _section(_sidebar(client, received.conversation_id).text, "upcoming")

    assert 'data-test="held"' not in upcoming
    assert 'data-test="upcoming-send"' in upcoming


def test_cancelling_an_upcoming_send_means_it_never_goes_out(app, db, frozen_clock, tmp_path):
    received, worker, adapters = _ada_with_a_delivered_order(db, tmp_path)
    job = _pending_satisfaction_job(db)
    sent_before = sum(len(adapter.sent) for adapter in adapters.values())
    events_before = count(db, LiveEvent)

    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            f"/customers/{received.customer_id}/upcoming/{job.id}/cancel",
            data={"csrf_token": csrf, "conversation_id": received.conversation_id},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/inbox/{received.conversation_id}"
        after = _sidebar(client, received.conversation_id).text

    reason = f"cancelled by {_agent_name(db)}"
    [cancelled] = rows(db, Job, Job.id == job.id)
    assert (cancelled.status, cancelled.last_error) == (JobStatus.CANCELLED, reason)
    [run] = rows(db, JourneyRun, JourneyRun.id == job.payload["run_id"])
    assert (run.status, run.exit_reason) == (RunStatus.EXITED, reason)
    [skipped] = rows(db, Message, SATISFACTION)
    assert (skipped.status, skipped.status_reason) == (MessageStatus.SKIPPED, f"not sent: {reason}")
    assert (skipped.journey_run_id, skipped.step_index) == (run.id, 1)
    assert skipped.conversation_id == received.conversation_id
    [event] = rows(db, LiveEvent, LiveEvent.id > events_before)
    assert (event.kind, event.conversation_id, event.data) == (
        "conversation",
        received.conversation_id,
        {"change": "customer"},
    )
    assert "Nothing scheduled." in _section(after, "upcoming")

    frozen_clock.advance(timedelta(hours=49))
    drain(worker)
    assert sum(len(adapter.sent) for adapter in adapters.values()) == sent_before
    assert count(db, Message, SATISFACTION) == 1


def test_cancelling_a_send_already_cancelled_is_not_found_and_changes_nothing(
    app, db, frozen_clock, tmp_path
):
    received, _, _ = _ada_with_a_delivered_order(db, tmp_path)
    job = _pending_satisfaction_job(db)
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        url = f"/customers/{received.customer_id}/upcoming/{job.id}/cancel"
        first = client.post(url, data={"csrf_token": csrf}, headers={"accept": "application/json"})
        again = client.post(url, data={"csrf_token": csrf}, headers={"accept": "application/json"})
    assert first.status_code == 200
    assert first.json() == {
        "ok": True,
        "cancelled": job.id,
        "journey": "Satisfaction check",
        "conversation_id": None,
    }
    assert again.status_code == 404
    assert count(db, Message, SATISFACTION) == 1


def test_merge_and_unmerge_through_the_routes_record_who_and_why(app, db, frozen_clock):
    ada = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="hello")
    duplicate = customer_writes(
        db, channel=ChannelKind.INSTAGRAM, sender="ig-ada-77", text="it's Ada again"
    )
    assert duplicate.customer_id != ada.customer_id
    name = _agent_name(db)

    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        found = client.get("/customers/search", params={"q": "ig-ada", "exclude": ada.customer_id})
        merged = client.post(
            f"/customers/{ada.customer_id}/merge",
            data={
                "csrf_token": csrf,
                "conversation_id": ada.conversation_id,
                "other": duplicate.customer_id,
                "reason": "Same person:  she gave her order number on Instagram",
            },
        )
        shown = _sidebar(client, ada.conversation_id).text
        [record] = rows(db, CustomerMerge)
        undone = client.post(
            f"/customers/{ada.customer_id}/merges/{record.id}/unmerge",
            data={
                "csrf_token": csrf,
                "conversation_id": ada.conversation_id,
                "reason": "different shopper after all",
            },
        )
        shown_after = _sidebar(client, ada.conversation_id).text

    assert found.json()["customers"] == [
        {
            "id": duplicate.customer_id,
            "name": f"Customer {duplicate.customer_id}",
            "email": None,
            "phone": None,
        }
    ]
    assert merged.status_code == 303
    assert merged.headers["location"] == f"/inbox/{ada.conversation_id}"
    assert record.reason == f"{name}: Same person: she gave her order number on Instagram"
    assert (record.kept_customer_id, record.merged_customer_id) == (
        ada.customer_id,
        duplicate.customer_id,
    )
    merges_html = _section(shown, "merges")
    assert f'data-merge-id="{record.id}"' in merges_html
    assert f"{name}: Same person: she gave her order number on Instagram" in merges_html
    assert 'data-test="unmerge"' in merges_html
    assert "ig-ada-77" in _section(shown, "identities")

    assert undone.status_code == 303
    [record] = rows(db, CustomerMerge)
    assert record.undone_at is not None
    assert record.undo_reason == f"{name}: different shopper after all"
    [returned] = rows(db, Customer, Customer.id == duplicate.customer_id)
    assert returned.merged_into_id is None
    [identity] = rows(db, CustomerIdentity, CustomerIdentity.value == "ig-ada-77")
    assert identity.customer_id == duplicate.customer_id
    assert "ig-ada-77" not in _section(shown_after, "identities")
    assert 'data-test="unmerge"' not in _section(shown_after, "merges")
    assert f"{name}: different shopper after all" in _section(shown_after, "merges")
    actions = [e.action for e in rows(db, AuditEntry, AuditEntry.action.like("customer.%"))]
    assert actions == ["customer.merge", "customer.unmerge"]


def test_merging_two_shopify_customers_is_refused_with_the_reason_and_changes_nothing(
    app, db, frozen_clock
):
    ada = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="hello")
    [grace] = rows(db, Customer, Customer.first_name == "Grace")
    events_before = count(db, LiveEvent)
    form = {"conversation_id": ada.conversation_id, "other": grace.id, "reason": "same?"}

    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        page = client.post(f"/customers/{ada.customer_id}/merge", data={"csrf_token": csrf, **form})
        fetched = client.post(
            f"/customers/{ada.customer_id}/merge",
            data={"csrf_token": csrf, **form},
            headers={"accept": "application/json"},
        )

    assert page.status_code == 409
    assert "not merged: they are different store customers (Shopify ids 7001 and 7002)" in page.text
    assert f'href="/inbox/{ada.conversation_id}"' in page.text
    assert fetched.status_code == 409
    assert fetched.json() == {
        "error": "not merged: they are different store customers (Shopify ids 7001 and 7002)"
    }
    assert count(db, CustomerMerge) == 0
    assert rows(db, Customer, Customer.id == grace.id)[0].merged_into_id is None
    assert count(db, LiveEvent) == events_before
    assert count(db, AuditEntry, AuditEntry.action.like("customer.%")) == 0


def test_a_merge_without_a_reason_is_refused(app, db, frozen_clock):
    ada = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="hello")
    other = customer_writes(db, channel=ChannelKind.INSTAGRAM, sender="ig-9", text="hi")
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            f"/customers/{ada.customer_id}/merge",
            data={"csrf_token": csrf, "other": other.customer_id, "reason": "   "},
            headers={"accept": "application/json"},
        )
    assert answer.status_code == 422
    assert answer.json() == {"error": "say why you merge them: the reason is kept with the record"}
    assert count(db, CustomerMerge) == 0


def test_another_workspaces_ids_answer_404_and_change_nothing(
    app, db, team, frozen_clock, tmp_path
):
    ours = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="hello")
    theirs, _, _ = _ada_with_a_delivered_order(db, tmp_path, slug="other")
    their_job = _pending_satisfaction_job(db)
    assert their_job.workspace_id == team.other_workspace_id
    their_duplicate = customer_writes(
        db, channel=ChannelKind.INSTAGRAM, sender="ig-other", text="hi", slug="other"
    )
    with db.transaction() as session:
        their_merge = merges.merge_customers(
            session,
            workspace_id=team.other_workspace_id,
            keep_id=theirs.customer_id,
            merge_id=their_duplicate.customer_id,
            reason="their own merge",
        ).id
    events_before = count(db, LiveEvent)
    json = {"accept": "application/json"}

    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answers = {
            "sidebar": _sidebar(client, theirs.conversation_id),
            "merge their customer": client.post(
                f"/customers/{theirs.customer_id}/merge",
                data={"csrf_token": csrf, "other": ours.customer_id, "reason": "x"},
                headers=json,
            ),
            "merge into ours": client.post(
                f"/customers/{ours.customer_id}/merge",
                data={"csrf_token": csrf, "other": theirs.customer_id, "reason": "x"},
                headers=json,
            ),
            "their conversation": client.post(
                f"/customers/{ours.customer_id}/merge",
                data={
                    "csrf_token": csrf,
                    "other": their_duplicate.customer_id,
                    "reason": "x",
                    "conversation_id": theirs.conversation_id,
                },
                headers=json,
            ),
            "unmerge their merge": client.post(
                f"/customers/{theirs.customer_id}/merges/{their_merge}/unmerge",
                data={"csrf_token": csrf},
                headers=json,
            ),
            "unmerge their merge as ours": client.post(
                f"/customers/{ours.customer_id}/merges/{their_merge}/unmerge",
                data={"csrf_token": csrf},
                headers=json,
            ),
            "cancel their send": client.post(
                f"/customers/{theirs.customer_id}/upcoming/{their_job.id}/cancel",
                data={"csrf_token": csrf},
                headers=json,
            ),
            "cancel their send as ours": client.post(
                f"/customers/{ours.customer_id}/upcoming/{their_job.id}/cancel",
                data={"csrf_token": csrf},
                headers=json,
            ),
        }
        found = client.get("/customers/search", params={"q": "ada"})

    for label, answer in answers.items():
        assert answer.status_code == 404, label
        assert "Ada" not in answer.text, label
        assert "7001" not in answer.text, label
    assert [c["id"] for c in found.json()["customers"]] == [ours.customer_id]
    [job] = rows(db, Job, Job.id == their_job.id)
    assert job.status == JobStatus.PENDING
    [record] = rows(db, CustomerMerge)
    assert (record.id, record.undone_at) == (their_merge, None)
    assert rows(db, Customer, Customer.id == ours.customer_id)[0].merged_into_id is None
    assert count(db, LiveEvent) == events_before


def test_writes_without_a_csrf_token_are_refused(app, db, frozen_clock):
    ada = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="hello")
    other = customer_writes(db, channel=ChannelKind.INSTAGRAM, sender="ig-9", text="hi")
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = client.post(
            f"/customers/{ada.customer_id}/merge",
            data={"other": other.customer_id, "reason": "same person"},
        )
    assert answer.status_code == 403
    assert count(db, CustomerMerge) == 0


def test_customer_names_order_items_and_tracking_urls_render_inert(app, db, frozen_clock, tmp_path):
    received, _, _ = _ada_with_a_delivered_order(db, tmp_path)
    with db.transaction() as session:
        session.execute(
            update(Customer)
            .where(Customer.id == received.customer_id)
            .values(first_name="<script>alert(1)</script>", last_name='"><img src=x>')
        )
        order = session.scalar(select(Order).where(Order.number == "#1501"))
        assert order is not None
        order.line_items = [
            {"title": "<img src=x onerror=alert(2)>", "quantity": 1, "variant_title": "<b>XL</b>"}
        ]
        session.execute(
            update(Fulfillment).values(
                tracking_url="javascript:alert(3)", tracking_company="<i>Evil</i>"
            )
        )

    with browser(app) as client:
        sign_in(client, AGENT)
        html = _sidebar(client, received.conversation_id).text

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<b>XL</b>" not in html
    assert "<i>Evil</i>" not in html
    assert "javascript:" not in html
    assert 'data-test="tracking-link"' not in html
    assert "1Z999AA100001501" in _section(html, "orders")
