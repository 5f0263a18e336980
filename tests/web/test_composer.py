"""The composer: an agent's replies within each channel's rules, internal notes, and the
moves on a conversation (assign, snooze, resolve, reopen, hand back, take over)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from parley.channels.base import (
    AccountChannelError,
    ChannelKind,
    PermanentChannelError,
    TemplateReview,
    TransientChannelError,
)
from parley.http.web.composer import composer_context, snooze_until
from parley.http.web.pages import ENV
from parley.inbox import service as inbox
from parley.inbox.models import Conversation, ConversationEvent
from parley.integrations.shopify import payloads
from parley.jobs.models import Job
from parley.live.models import LiveEvent
from parley.messaging import catalog
from parley.messaging.models import Author, DeliveryAttempt, Message
from parley.messaging.types import MessageType
from support import (
    all_adapters,
    count,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    meta_holds,
    post,
    rows,
    signed,
)
from web_support import AGENT, OTHER_ADMIN, browser, login_as, seed_team, sign_in, web_app

ADA_WHATSAPP = "+447911123456"
GRACE_SMS = "+12025550143"
FAMILY = "+12025550177"
JSON = {"accept": "application/json"}


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def _conversation(db, conversation_id: int) -> Conversation:
    return rows(db, Conversation, Conversation.id == conversation_id)[0]


def _agent_messages(db) -> list[Message]:
    return rows(db, Message, Message.author == Author.AGENT)


def _send_template(client, conversation_id: int, csrf: str, name: str, **kwargs):
    """An agent picks WhatsApp template ``name`` in the composer and sends it."""
    return client.post(
        f"/inbox/{conversation_id}/reply",
        data={"csrf_token": csrf, "channel": "whatsapp", "template": name},
        **kwargs,
    )


def _events(db, conversation_id: int) -> list[ConversationEvent]:
    return rows(db, ConversationEvent, ConversationEvent.conversation_id == conversation_id)


def _whatsapp_conversation(db) -> int:
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA_WHATSAPP, text="can I talk to an agent"
    )
    assert received.conversation_id is not None
    return received.conversation_id


def _store_template(db, workspace_id: int) -> None:
    """A template the store had approved that needs no order: what the picker sends."""
    with db.transaction() as session:
        catalog.save_template(
            session,
            workspace_id=workspace_id,
            message_type=MessageType.PROMOTION,
            channel=ChannelKind.WHATSAPP,
            content={
                "text": "Hi {{ customer.first_name }}, we have an answer for you: reply here.",
                "whatsapp_template": "support_follow_up",
                "whatsapp_parameters": ["{{ customer.first_name or 'there' }}"],
            },
        )


def test_a_reply_goes_out_on_the_customers_whatsapp_as_the_agent(app, db, tmp_path):
    conversation_id = _whatsapp_conversation(db)
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "whatsapp", "body": "  Hi Ada, Sam here!  "},
        )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/inbox/{conversation_id}"
    [message] = _agent_messages(db)
    assert (message.channel, message.recipient, message.body) == (
        "whatsapp",
        ADA_WHATSAPP,
        "Hi Ada, Sam here!",
    )
    assert (message.sender, message.status, message.template) == ("Sam Agent", "queued", None)
    assert count(db, Job, Job.kind == "messaging.deliver") == 1
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path))
    sent = [m for m in adapters[ChannelKind.WHATSAPP].sent if m.text == "Hi Ada, Sam here!"]
    assert len(sent) == 1
    assert sent[0].to == ADA_WHATSAPP
    assert sent[0].is_human_agent is False  # the tag is Instagram's, past its 24 h
    conversation = _conversation(db, conversation_id)
    assert conversation.owner == "human"
    assert conversation.assignee_id is not None
    assert (
        count(
            db, LiveEvent, LiveEvent.kind == "message", LiveEvent.conversation_id == conversation_id
        )
        >= 2
    )


def _reply_that_failed(db, frozen_clock, tmp_path, error, *, attempts: int = 8):
    """Sam's WhatsApp reply to Ada, answered with ``error`` at every attempt."""
    conversation_id = _whatsapp_conversation(db)
    _reply_as_agent(db, conversation_id, "Hi Ada, Sam here!")
    adapters = all_adapters()
    adapters[ChannelKind.WHATSAPP].script = [error] * attempts
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    [job] = rows(db, Job, Job.kind == "messaging.deliver")
    for _ in range(attempts):
        drain(worker)
        [job] = rows(db, Job, Job.id == job.id)
        frozen_clock.advance(max(job.due_at - frozen_clock.now, timedelta(0)))
    [reply] = _agent_messages(db)
    return conversation_id, reply, job, worker, adapters


def _reply_as_agent(db, conversation_id: int, text: str) -> None:
    with browser(web_app(db)) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "whatsapp", "body": text},
        )
        assert answer.status_code == 303


def test_an_agent_sends_a_reply_again_that_gave_up_in_an_outage(frozen_clock, app, db, tmp_path):
    conversation_id, reply, job, worker, adapters = _reply_that_failed(
        db, frozen_clock, tmp_path, TransientChannelError("503 from provider")
    )
    assert (job.status, reply.status, reply.attempts) == ("dead", "failed", 8)

    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        timeline = client.get(f"/inbox/{conversation_id}/_timeline").text
        assert timeline.count('data-test="send-again"') == 1
        assert f"/inbox/{conversation_id}/messages/{reply.id}/send-again" in timeline
        answer = client.post(
            f"/inbox/{conversation_id}/messages/{reply.id}/send-again",
            data={"csrf_token": csrf},
        )
        assert answer.status_code == 303
        assert rows(db, Job, Job.id == job.id)[0].status == "pending"
        drain(worker)
        after = client.get(f"/inbox/{conversation_id}/_timeline").text

    sent = [m for m in adapters[ChannelKind.WHATSAPP].sent if m.text == "Hi Ada, Sam here!"]
    assert len(sent) == 1
    [reply] = _agent_messages(db)
    assert (reply.status, reply.attempts, reply.status_reason) == ("sent", 9, None)
    assert rows(db, Job, Job.id == job.id)[0].status == "done"
    assert 'data-test="send-again"' not in after


def test_a_reply_refused_for_good_is_not_offered_again_and_is_refused(
    frozen_clock, app, db, tmp_path
):
    conversation_id, reply, job, _, _ = _reply_that_failed(
        db, frozen_clock, tmp_path, PermanentChannelError("not a WhatsApp user"), attempts=1
    )
    assert (job.status, reply.status) == ("done", "failed")

    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        timeline = client.get(f"/inbox/{conversation_id}/_timeline").text
        answer = client.post(
            f"/inbox/{conversation_id}/messages/{reply.id}/send-again",
            data={"csrf_token": csrf},
        )
        elsewhere = client.post(
            f"/inbox/{conversation_id}/messages/{reply.id + 1000}/send-again",
            data={"csrf_token": csrf},
        )
    assert 'data-test="send-again"' not in timeline
    assert answer.status_code == 409
    assert "only a message that gave up after every retry can be sent again" in answer.text
    assert elsewhere.status_code == 404
    assert rows(db, Job, Job.id == job.id)[0].status == "done"


def test_a_reply_whose_provider_refused_the_store_token_waits_and_goes_once_it_is_fixed(
    frozen_clock, app, db, tmp_path
):
    refusal = AccountChannelError("Invalid OAuth access token", provider_code="190")
    _, reply, job, worker, adapters = _reply_that_failed(
        db, frozen_clock, tmp_path, refusal, attempts=1
    )
    assert (job.status, job.attempts) == ("pending", 1)
    assert (reply.status, reply.status_reason) == (
        "queued",
        "retrying after attempt 1: Invalid OAuth access token",
    )

    drain(worker)  # the token replaced

    sent = [m for m in adapters[ChannelKind.WHATSAPP].sent if m.text == "Hi Ada, Sam here!"]
    assert len(sent) == 1
    [reply] = _agent_messages(db)
    assert (reply.status, reply.attempts) == ("sent", 2)
    assert rows(db, Job, Job.id == job.id)[0].status == "done"
    attempts = rows(db, DeliveryAttempt, DeliveryAttempt.message_id == reply.id)
    assert [a.outcome for a in attempts] == ["account_refused", "sent"]


def test_an_agent_sends_again_a_dispatch_that_gave_up_in_an_outage(frozen_clock, app, db, tmp_path):
    received = customer_writes(
        db, channel=ChannelKind.SMS, sender=GRACE_SMS, text="when will my order ship?"
    )
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    drain(worker)  # the assistant's turn
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    drain(worker)
    adapters[ChannelKind.SMS].script = [TransientChannelError("503 from provider")] * 8
    post(db, dispatched)
    for _ in range(20):
        drain(worker)
        pending = rows(db, Job, Job.status == "pending")
        if not pending:
            break
        frozen_clock.advance(max(min(j.due_at for j in pending) - frozen_clock.now, timedelta(0)))
    [dead] = rows(db, Job, Job.status == "dead")
    [failed] = rows(db, Message, Message.message_type == "dispatch")
    assert (failed.status, failed.conversation_id) == ("failed", received.conversation_id)

    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        url = f"/inbox/{received.conversation_id}"
        timeline = client.get(f"{url}/_timeline").text
        assert timeline.count('data-test="send-again"') == 1
        assert f"{url}/messages/{failed.id}/send-again" in timeline
        answer = client.post(f"{url}/messages/{failed.id}/send-again", data={"csrf_token": csrf})
        assert answer.status_code == 303
        assert rows(db, Job, Job.id == dead.id)[0].status == "pending"
        drain(worker)
        after = client.get(f"{url}/_timeline").text

    dispatch = rows(db, Message, Message.message_type == "dispatch")
    assert [(m.idempotency_key, m.status) for m in dispatch] == [
        (failed.idempotency_key, "failed"),
        (f"{failed.idempotency_key}:r1", "sent"),
    ]
    sent = [sms for sms in adapters[ChannelKind.SMS].sent if sms.text == dispatch[1].body]
    assert [sms.to for sms in sent] == [GRACE_SMS]
    assert 'data-test="send-again"' not in after


def test_a_reply_can_go_on_another_channel_the_customer_has(app, db):
    conversation_id = _whatsapp_conversation(db)
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{conversation_id}/_composer")
        answer = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "email", "body": "Details by email"},
            headers=JSON,
        )
    assert window.status_code == 200
    assert answer.status_code == 200
    assert answer.json()["message"]["channel"] == "email"
    [message] = _agent_messages(db)
    assert (message.channel, message.recipient, message.status) == (
        "email",
        "ada@example.com",
        "queued",
    )
    assert message.subject == "Your message to Juniper & Pine"


def test_a_template_meta_classes_as_marketing_is_marked_and_refused_without_consent(
    frozen_clock, app, db, team
):
    # Given Meta classes the store's follow-up as marketing and has paused the dispatch one
    conversation_id = _whatsapp_conversation(db)
    _store_template(db, team.workspace_id)
    meta_holds(
        db,
        TemplateReview("support_follow_up", "en", "APPROVED", "MARKETING"),
        TemplateReview("order_dispatched", "en", "PAUSED", "UTILITY"),
        TemplateReview("order_delivered", "en", "APPROVED", "UTILITY"),
        workspace_id=team.workspace_id,
    )
    frozen_clock.advance(timedelta(hours=24, seconds=1))
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{conversation_id}/_composer")
        refused = _send_template(client, conversation_id, csrf, "support_follow_up", headers=JSON)
        paused = _send_template(client, conversation_id, csrf, "order_dispatched", headers=JSON)

    assert "support_follow_up (promotion; marketing: needs their marketing consent)" in window.text
    assert 'value="order_delivered"' in window.text
    assert 'value="order_dispatched"' not in window.text
    assert refused.status_code == 422
    assert refused.json()["error"] == (
        "template support_follow_up (en) is marketing at Meta; no marketing consent"
    )
    assert paused.status_code == 422
    assert "no approved WhatsApp template named 'order_dispatched'" in paused.json()["error"]
    assert _agent_messages(db) == []


def test_a_closed_whatsapp_window_offers_templates_and_refuses_free_text(
    frozen_clock, app, db, team, tmp_path
):
    conversation_id = _whatsapp_conversation(db)
    _store_template(db, team.workspace_id)
    frozen_clock.advance(timedelta(hours=24, seconds=1))
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{conversation_id}/_composer")
        refused = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "whatsapp", "body": "Still there?"},
            headers=JSON,
        )
        assert _agent_messages(db) == []
        no_order = _send_template(client, conversation_id, csrf, "order_dispatched", headers=JSON)
        accepted = _send_template(client, conversation_id, csrf, "support_follow_up")
    assert 'data-test="window-closed"' in window.text
    assert 'data-test="template-picker"' in window.text
    assert 'value="support_follow_up"' in window.text
    assert f'data-refresh="/inbox/{conversation_id}/_composer"' in window.text
    assert 'name="body"' not in window.text
    assert refused.status_code == 409
    assert "24-hour window" in refused.json()["error"]
    assert no_order.status_code == 422
    assert "needs an order" in no_order.json()["error"]
    assert accepted.status_code == 303
    [message] = _agent_messages(db)
    assert message.status == "queued"
    assert message.template == {
        "name": "support_follow_up",
        "language": "en",
        "parameters": ["Ada"],
    }
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path))
    [sent] = [m for m in adapters[ChannelKind.WHATSAPP].sent if m.template is not None]
    assert sent.template.name == "support_follow_up"
    assert rows(db, Message, Message.id == message.id)[0].status == "sent"


def test_instagram_replies_after_a_day_are_human_agent_and_after_a_week_refused(
    frozen_clock, app, db, tmp_path
):
    received = customer_writes(
        db, channel=ChannelKind.INSTAGRAM, sender="ig-5501", text="can I talk to an agent"
    )
    conversation_id = received.conversation_id
    frozen_clock.advance(timedelta(hours=30))
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{conversation_id}/_composer")
        late = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "instagram", "body": "Sorry for the wait"},
        )
        adapters = all_adapters()
        drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path))
        frozen_clock.advance(timedelta(days=6))
        csrf = sign_in(client, AGENT)  # the earlier session timed out meanwhile
        too_late = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "instagram", "body": "Hello again?"},
            headers=JSON,
        )
    assert "sent as a human-agent reply (7-day window)" in window.text.lower()
    assert late.status_code == 303
    [sent] = [m for m in adapters[ChannelKind.INSTAGRAM].sent if m.text == "Sorry for the wait"]
    assert sent.is_human_agent is True
    assert too_late.status_code == 409
    assert "has not written a direct message in the last 7 days" in too_late.json()["error"]
    assert [m.body for m in _agent_messages(db)] == ["Sorry for the wait"]


def test_an_instagram_reply_inside_the_day_goes_untagged(frozen_clock, app, db, tmp_path):
    """HUMAN_AGENT is for replies past the 24-hour window only; inside it a reply is a
    standard response."""
    received = customer_writes(
        db, channel=ChannelKind.INSTAGRAM, sender="ig-5502", text="is the blue one back?"
    )
    frozen_clock.advance(timedelta(hours=2))
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{received.conversation_id}/_composer")
        answer = client.post(
            f"/inbox/{received.conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "instagram", "body": "Yes, since Monday"},
        )
        adapters = all_adapters()
        drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path))
    assert answer.status_code == 303
    assert "human-agent reply" not in window.text.lower()
    [sent] = [m for m in adapters[ChannelKind.INSTAGRAM].sent if m.text == "Yes, since Monday"]
    assert sent.is_human_agent is False


def test_a_reply_on_a_channel_the_customer_opted_out_of_is_refused(app, db):
    conversation_id = _whatsapp_conversation(db)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA_WHATSAPP, text="STOP")
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{conversation_id}/_composer")
        answer = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "whatsapp", "body": "But wait"},
            headers=JSON,
        )
    assert answer.status_code == 409
    assert "opted out of whatsapp" in answer.json()["error"]
    assert 'data-test="channel-refusal"' in window.text
    assert _agent_messages(db) == []


def test_a_reply_by_text_to_a_number_that_said_stop_is_refused_whoever_else_it_belongs_to(
    app, db, tmp_path
):
    # Given mum and her son, two store customers signed up for texts on one family phone;
    # mum's profile holds the number, and the number texted STOP
    for person, email in ((8101, "may@example.com"), (8102, "sol@example.com")):
        body, headers = signed(
            "customers/update",
            payloads.customer_payload(
                customer={
                    "id": person,
                    "first_name": "Ray",
                    "email": email,
                    "phone": FAMILY,
                    "sms_consent": True,
                },
                created_at=datetime(2026, 1, 5, tzinfo=UTC),
            ),
            webhook_id=f"signs-up-{person}",
        )
        post(db, None, body=body, headers=headers)
    customer_writes(db, channel=ChannelKind.SMS, sender=FAMILY, text="STOP")
    drain(inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path))

    # When the son emails, and an agent answers him by text
    asked = customer_writes(
        db, channel=ChannelKind.EMAIL, sender="sol@example.com", text="is my parcel out?"
    )
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{asked.conversation_id}/_composer")
        answer = client.post(
            f"/inbox/{asked.conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "sms", "body": "Yes, it left today"},
            headers=JSON,
        )

    # Then the text is refused, saying why, and nothing is queued to the number
    assert answer.status_code == 409
    assert answer.json()["error"] == "cannot reply on SMS: opted out of sms (sms reply 'STOP')"
    assert 'data-test="channel-refusal"' in window.text
    assert _agent_messages(db) == []


def _visitor_chats_as_ada(db, visitor_id: str, text: str) -> int:
    """A web-chat visitor types Ada's email into the widget, then writes ``text``."""
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender=visitor_id, text="hi")
    with db.transaction() as session:
        inbox.identify_visitor(
            session, workspace_id=1, visitor_id=visitor_id, email="ada@example.com"
        )
    received = customer_writes(db, channel=ChannelKind.WEBCHAT, sender=visitor_id, text=text)
    assert received.conversation_id is not None
    return received.conversation_id


def test_a_web_chat_reply_is_refused_when_two_visitors_gave_the_customers_email(app, db):
    """A5: two chat visitors typed Ada's email, so her conversation holds both; web chat
    proves neither, and the answer to her question must not reach the other one."""
    conversation_id = _visitor_chats_as_ada(db, "v-ada", "what address is my order going to?")
    assert _visitor_chats_as_ada(db, "v-other", "ok") == conversation_id
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        window = client.get(f"/inbox/{conversation_id}/_composer")
        refused = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "webchat", "body": "12 Elm Street"},
            headers=JSON,
        )
        assert _agent_messages(db) == []
        by_email = client.post(
            f"/inbox/{conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "email", "body": "12 Elm Street"},
            headers=JSON,
        )
    reason = (
        "2 web-chat visitors wrote in this conversation, and web chat proves none of them is "
        "the customer: a reply here could reach the wrong one"
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == f"cannot reply on web chat: {reason}"
    assert f"Can't reply on Web chat: {reason}." in window.text
    assert by_email.status_code == 200
    [message] = _agent_messages(db)
    assert (message.channel, message.recipient, message.status) == (
        "email",
        "ada@example.com",
        "queued",
    )


def test_a_note_stays_internal(app, db, team, tmp_path):
    conversation_id = _whatsapp_conversation(db)
    messages_before = count(db, Message)
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            f"/inbox/{conversation_id}/note",
            data={"csrf_token": csrf, "body": "VIP <b>customer</b>, refund approved"},
            headers=JSON,
        )
    assert answer.status_code == 200
    [note] = [e for e in _events(db, conversation_id) if e.kind == "note"]
    assert note.actor == "Sam Agent"
    assert note.detail == {"text": "VIP <b>customer</b>, refund approved", "user_id": team.agent_id}
    assert answer.json()["note"]["id"] == note.id
    assert count(db, Message) == messages_before
    assert count(db, Job, Job.kind == "messaging.deliver") == 0
    live = rows(db, LiveEvent, LiveEvent.conversation_id == conversation_id)
    assert {"change": "note", "note_id": note.id} in [event.data for event in live]
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path))
    assert not any("refund approved" in m.text for a in adapters.values() for m in a.sent)


def test_assign_changes_only_the_assignee_and_refuses_strangers(app, db, team):
    conversation_id = _whatsapp_conversation(db)
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        mine = client.post(
            f"/inbox/{conversation_id}/assign", data={"csrf_token": csrf, "assignee": "me"}
        )
        assert _conversation(db, conversation_id).assignee_id == team.agent_id
        teammate = client.post(
            f"/inbox/{conversation_id}/assign",
            data={"csrf_token": csrf, "assignee": str(team.admin_id)},
            headers=JSON,
        )
        stranger = client.post(
            f"/inbox/{conversation_id}/assign",
            data={"csrf_token": csrf, "assignee": str(team.other_admin_id)},
            headers=JSON,
        )
        assert _conversation(db, conversation_id).assignee_id == team.admin_id
        nobody = client.post(
            f"/inbox/{conversation_id}/assign", data={"csrf_token": csrf, "assignee": ""}
        )
    assert mine.status_code == 303
    assert teammate.json()["conversation"]["assignee_id"] == team.admin_id
    assert stranger.status_code == 422
    assert nobody.status_code == 303
    conversation = _conversation(db, conversation_id)
    assert (conversation.assignee_id, conversation.status, conversation.owner) == (
        None,
        "open",
        "assistant",
    )
    assigned = [e.detail for e in _events(db, conversation_id) if e.kind == "assigned"]
    assert assigned == [
        {"from": None, "to": team.agent_id},
        {"from": team.agent_id, "to": team.admin_id},
        {"from": team.admin_id, "to": None},
    ]


def test_an_assignee_id_too_big_for_the_database_is_refused_like_a_stranger(app, db, team):
    conversation_id = _whatsapp_conversation(db)
    events_before = len(_events(db, conversation_id))
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            f"/inbox/{conversation_id}/assign",
            data={"csrf_token": csrf, "assignee": "9" * 20},
            headers=JSON,
        )
    assert answer.status_code == 422
    assert _conversation(db, conversation_id).assignee_id is None
    assert len(_events(db, conversation_id)) == events_before


def test_snooze_resolve_reopen_hand_back_and_take_over(frozen_clock, app, db):
    conversation_id = _whatsapp_conversation(db)
    with browser(app) as client:
        csrf = sign_in(client, AGENT)

        def move(path: str, **fields: str) -> dict:
            answer = client.post(
                f"/inbox/{conversation_id}/{path}",
                data={"csrf_token": csrf, **fields},
                headers=JSON,
            )
            assert answer.status_code == 200, answer.text
            return answer.json()["conversation"]

        snoozed = move("snooze", until="tomorrow")
        # 2026-03-02 10:00 UTC is 10:00 in London: tomorrow 9:00 there is 09:00 UTC.
        assert snoozed["status"] == "snoozed"
        assert snoozed["snoozed_until"] == "2026-03-03T09:00:00+00:00"
        assert move("reopen")["status"] == "open"
        assert move("resolve")["status"] == "resolved"
        assert move("reopen")["status"] == "open"
        assert move("take-over")["owner"] == "human"
        assert move("hand-back")["owner"] == "assistant"
        form = client.post(f"/inbox/{conversation_id}/resolve", data={"csrf_token": csrf})
    assert form.status_code == 303
    events = [(e.kind, e.actor) for e in _events(db, conversation_id) if e.kind != "opened"]
    assert events == [
        ("status_changed", "Sam Agent"),
        ("status_changed", "Sam Agent"),
        ("status_changed", "Sam Agent"),
        ("status_changed", "Sam Agent"),
        ("handed_off", "Sam Agent"),
        ("handed_back", "Sam Agent"),
        ("status_changed", "Sam Agent"),
    ]
    changes = [
        e.data["change"]
        for e in rows(db, LiveEvent, LiveEvent.kind == "conversation")
        if e.conversation_id == conversation_id
    ]
    assert changes == ["status"] * 4 + ["handed_off", "handed_back", "status"]


def test_snooze_presets_are_read_in_the_stores_timezone():
    now = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)  # Friday; already Saturday in Tokyo
    assert snooze_until("1h", "", timezone="Asia/Tokyo", now=now) == now + timedelta(hours=1)
    assert snooze_until("tomorrow", "", timezone="Asia/Tokyo", now=now) == datetime(
        2026, 3, 8, 0, 0, tzinfo=UTC
    )
    assert snooze_until("monday", "", timezone="Asia/Tokyo", now=now) == datetime(
        2026, 3, 9, 0, 0, tzinfo=UTC
    )
    assert snooze_until("", "2026-03-10T14:30", timezone="Europe/London", now=now) == datetime(
        2026, 3, 10, 14, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        pytest.param("reply", {"channel": "whatsapp", "body": "hi"}, id="reply_case"),
        pytest.param("note", {"body": "a note"}, id="note_case"),
        pytest.param("assign", {"assignee": "me"}, id="assign_case"),
        pytest.param("snooze", {"until": "1h"}, id="snooze_case"),
        pytest.param("resolve", {}, id="resolve_case"),
        pytest.param("reopen", {}, id="reopen_case"),
        pytest.param("hand-back", {}, id="hand_back_case"),
        pytest.param("take-over", {}, id="take_over_case"),
    ],
)
def test_another_workspaces_conversation_is_not_found_and_unchanged(app, db, path, fields):
    conversation_id = _whatsapp_conversation(db)
    before = _conversation(db, conversation_id)
    events_before = len(_events(db, conversation_id))
    messages_before = count(db, Message)
    with browser(app) as client:
        csrf = sign_in(client, OTHER_ADMIN)
        answer = client.post(
            f"/inbox/{conversation_id}/{path}", data={"csrf_token": csrf, **fields}, headers=JSON
        )
        part = client.get(f"/inbox/{conversation_id}/_composer")
    assert answer.status_code == 404
    assert part.status_code == 404
    assert "Ada" not in answer.text + part.text
    after = _conversation(db, conversation_id)
    assert (after.status, after.owner, after.assignee_id) == (
        before.status,
        before.owner,
        before.assignee_id,
    )
    assert len(_events(db, conversation_id)) == events_before
    assert count(db, Message) == messages_before


def test_a_move_without_the_csrf_token_is_refused(app, db):
    conversation_id = _whatsapp_conversation(db)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = client.post(f"/inbox/{conversation_id}/resolve", data={})
    assert answer.status_code == 403
    assert _conversation(db, conversation_id).status == "open"


def test_the_composer_renders_its_controls(app, db, team):
    conversation_id = _whatsapp_conversation(db)
    with db.transaction() as session:
        login = login_as(session, team.workspace_id, team.agent_id)
        conversation = session.scalar(
            select(Conversation).where(Conversation.id == conversation_id)
        )
        html = ENV.get_template("conversation/_composer.html").render(
            login=login, csrf_token="t", **composer_context(session, login, conversation)
        )
    for hook in (
        "composer",
        "reply-body",
        "reply-channel",
        "send-reply",
        "add-note",
        "mode-note",
        "assign-me",
        "assignee-select",
        "snooze",
        "resolve",
        "take-over",
        "canned-picker",
        "shortcut-help",
    ):
        assert f'data-test="{hook}"' in html, hook
    window_at = html.index('data-test="composer-window"')
    assert html.index('name="body"') > html.index("</div>", window_at)
    assert "/tracking · Where is my order" in html


def test_a_reply_longer_than_the_channel_takes_is_refused_and_the_draft_kept(app, db):
    """Instagram takes 1,000 characters: a longer reply would only fail at Meta, for good,
    after the agent had moved on."""
    received = customer_writes(db, channel=ChannelKind.INSTAGRAM, sender="ig-5502", text="hi")
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            f"/inbox/{received.conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "instagram", "body": "x" * 1001},
            headers=JSON,
        )
        fits = client.post(
            f"/inbox/{received.conversation_id}/reply",
            data={"csrf_token": csrf, "channel": "instagram", "body": "y" * 1000},
            headers=JSON,
        )
    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "Instagram takes at most 1,000 characters in a message; this reply has 1,001"
    )
    assert fits.status_code == 200, fits.text
    assert [m.body for m in _agent_messages(db)] == ["y" * 1000]
