"""The conversation page: the customer's whole cross-channel timeline in one column, every
customer string escaped, images only through the proxy."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from markupsafe import escape
from sqlalchemy import select

from parley.channels.base import Attachment, ChannelKind
from parley.customers.models import Customer
from parley.http.web.media import signature
from parley.inbox.models import AssistantTurn, Conversation, ConversationEvent
from parley.inbox.service import assign, hand_off
from parley.journeys.models import Journey, JourneyRun
from parley.messaging.models import Message
from support import customer_writes, instagram_dm
from web_support import AGENT, browser, seed_team, sign_in, web_app

ADA_PHONE = "+447911123456"
ADA_EMAIL = "ada@example.com"
XSS = (
    '"><img src=x onerror=alert(1)>',
    "<script>alert('x')</script>",
    '<a href="javascript:alert(1)">click</a>',
    "' onmouseover='alert(1)' x='",
    "[click](javascript:alert(1))",
)


@pytest.fixture
def clock(frozen_clock):
    return frozen_clock


@pytest.fixture
def team(db, clock):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def items(page):
    return re.findall(r'<li class="item[^"]*" data-test="timeline-item" data-kind="(\w+)"', page)


def outbound(session, conversation, clock, **fields):
    row = {
        "workspace_id": conversation.workspace_id,
        "customer_id": conversation.customer_id,
        "conversation_id": conversation.id,
        "direction": "outbound",
        "author": "agent",
        "idempotency_key": f"test:{clock.now.isoformat()}:{fields.get('body')}",
        "message_type": "reply",
        "purpose": "transactional",
        "channel": "whatsapp",
        "headers": {},
        "decision": [],
        "attempts": 0,
        "status": "delivered",
        "created_at": clock.now,
        "status_updated_at": clock.now,
    } | fields
    message = Message(**row)
    session.add(message)
    session.flush()
    return message


def test_the_timeline_shows_every_channel_journeys_turns_notes_and_changes_in_order(
    db, app, team, clock
):
    clock.now += timedelta(minutes=1)
    first = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="Where is it?")
    clock.now += timedelta(minutes=1)
    customer_writes(db, channel=ChannelKind.EMAIL, sender=ADA_EMAIL, text="Also by email")
    conversation_id = first.conversation_id
    with db.transaction() as session:
        conversation = session.get_one(Conversation, conversation_id)
        journey = session.scalar(
            select(Journey).where(Journey.workspace_id == team.workspace_id).limit(1)
        )
        run = JourneyRun(
            workspace_id=team.workspace_id,
            journey_id=journey.id,
            run_key="order-1",
            customer_id=conversation.customer_id,
            context={},
            status="active",
            started_at=clock.now,
        )
        session.add(run)
        session.flush()
        clock.now += timedelta(minutes=1)
        outbound(
            session,
            conversation,
            clock,
            author="journey",
            journey_run_id=run.id,
            step_index=1,
            message_type="dispatch",
            channel="sms",
            body=None,
            status="skipped",
            status_reason="no SMS consent for marketing",
        )
        clock.now += timedelta(minutes=1)
        session.add(
            AssistantTurn(
                workspace_id=team.workspace_id,
                conversation_id=conversation_id,
                message_id=first.message_id,
                intent="track_order",
                confidence=0.42,
                entities={},
                action="handed_off",
                reason="twice unsure what the customer meant",
                lookups=[{"lookup": "order_by_number", "number": "#1001", "found": False}],
                created_at=clock.now,
            )
        )
        hand_off(
            session,
            workspace_id=team.workspace_id,
            conversation_id=conversation_id,
            reason="twice unsure what the customer meant",
            actor="assistant",
        )
        clock.now += timedelta(minutes=1)
        assign(
            session,
            workspace_id=team.workspace_id,
            conversation_id=conversation_id,
            assignee_id=team.agent_id,
            actor="Avery Admin",
        )
        clock.now += timedelta(minutes=1)
        session.add(
            ConversationEvent(
                workspace_id=team.workspace_id,
                conversation_id=conversation_id,
                kind="note",
                actor="Sam Agent",
                detail={"text": "Called the courier", "user_id": team.agent_id},
                created_at=clock.now,
            )
        )
        clock.now += timedelta(minutes=1)
        outbound(session, conversation, clock, body="On its way!", status="read")
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get(f"/inbox/{conversation_id}", headers={"accept": "text/html"})
        part = client.get(f"/inbox/{conversation_id}/_timeline")
    assert page.status_code == 200
    assert part.status_code == 200
    assert items(page.text) == [
        "message",  # WhatsApp
        "event",  # opened
        "message",  # email
        "message",  # the journey's skipped SMS
        "turn",
        "event",  # handed off
        "event",  # assigned
        "note",
        "message",  # the agent's reply
    ]
    assert items(part.text) == items(page.text)
    text = page.text
    assert '<span class="badge whatsapp">whatsapp</span>' in text
    assert '<span class="badge email">email</span>' in text
    assert '<span class="badge sms">sms</span>' in text
    assert f'data-test="journey">{journey.name}, step 2 · dispatch<' in text
    assert 'data-test="status-reason">Not sent: no SMS consent for marketing<' in text
    assert 'data-test="turn-intent">track order<' in text
    assert "(42%)" in text
    assert 'data-test="turn-reason">Why: twice unsure what the customer meant<' in text
    assert "order by number</strong> · found: False · number: #1001" in text
    assert "Handed to a human: twice unsure what the customer meant" in text
    assert "Avery Admin assigned it to Sam Agent" in text
    assert 'data-test="note-body">Called the courier<' in text
    assert 'class="badge status-read" data-test="message-status"' in text
    assert 'data-test="message-body">On its way!<' in text
    assert 'data-test="conversation-assignee">Assigned to Sam Agent<' in text
    assert 'data-test="conversation-owner">Human answers<' in text
    assert '<ol class="timeline" data-test="timeline" data-refresh="/inbox/' in text


@pytest.mark.parametrize("payload", XSS)
@pytest.mark.parametrize(
    ("channel", "sender"),
    [
        (ChannelKind.WHATSAPP, ADA_PHONE),
        (ChannelKind.SMS, ADA_PHONE),
        (ChannelKind.EMAIL, ADA_EMAIL),
        (ChannelKind.INSTAGRAM, "17841400000000999"),
        (ChannelKind.WEBCHAT, "visitor-xss"),
    ],
)
def test_customer_text_and_names_render_as_text_on_every_channel(
    db, app, clock, channel, sender, payload
):
    received = customer_writes(
        db, channel=channel, sender=sender, text=payload, subject=payload, sender_name=payload
    )
    with db.transaction() as session:
        customer = session.get_one(Customer, received.customer_id)
        customer.first_name, customer.last_name = payload, payload
    with browser(app) as client:
        sign_in(client, AGENT)
        pages = [
            client.get(f"/inbox/{received.conversation_id}").text,
            client.get(f"/inbox/{received.conversation_id}/_timeline").text,
            client.get("/inbox/_list").text,
        ]
    escaped = str(escape(payload))
    for page in pages:
        assert escaped in page
        if escaped != payload:  # a markdown link has nothing to escape, and is not a link
            assert payload not in page
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert 'href="javascript:' not in page


def test_remote_images_render_only_through_the_signed_proxy_and_svg_only_downloads(db, app, clock):
    photo = "https://cdn.example.com/photo.jpg?x=1&y=2"
    drawing = "https://cdn.example.com/evil.svg"
    received = customer_writes(
        db,
        channel=ChannelKind.WHATSAPP,
        sender=ADA_PHONE,
        text="see attached",
        attachments=(
            Attachment(kind="image", url=photo, mime_type="image/jpeg", caption="my parcel"),
            Attachment(kind="image", url=drawing, mime_type="image/svg+xml", filename="a.svg"),
            Attachment(kind="document", url="javascript:alert(1)", filename="x.html"),
            Attachment(kind="audio", provider_media_id="media-1"),
        ),
    )
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get(f"/inbox/{received.conversation_id}").text
    secret = app.state.settings.secret_key
    photo_src = (
        "/media/proxy?u=https%3A%2F%2Fcdn.example.com%2Fphoto.jpg%3Fx%3D1%26y%3D2"
        f"&amp;s={signature(secret, photo)}"
    )
    assert f'<img src="{photo_src}" alt="my parcel"' in page
    assert "cdn.example.com/" not in page.replace("cdn.example.com%2F", "")
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == 1
    svg_link = (
        "/media/proxy?u=https%3A%2F%2Fcdn.example.com%2Fevil.svg"
        f"&amp;s={signature(secret, drawing)}"
    )
    assert f'<a class="download" href="{svg_link}" download' in page
    assert "javascript:" not in page
    assert 'data-test="attachment-ref">document · x.html (kept with the provider)' in page
    # WhatsApp names its files by id: parley asks Graph for it with the number's token.
    held = f"/media/messages/{received.message_id}/3"
    assert f'<a class="download" href="{held}" download' in page


def test_each_message_names_the_stores_number_it_came_to_or_went_from(db, app, team, clock):
    written = customer_writes(
        db, channel=ChannelKind.SMS, sender="+12025550143", text="hi", account="+15005550198"
    )
    with db.transaction() as session:
        conversation = session.get_one(Conversation, written.conversation_id)
        clock.now += timedelta(minutes=1)
        outbound(
            session, conversation, clock, channel="sms", body="hello", store_address="+15005550198"
        )
        clock.now += timedelta(minutes=1)
        outbound(session, conversation, clock, channel="sms", body="from the deployment's")
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get(f"/inbox/{written.conversation_id}").text

    start = page.index('data-test="timeline"')
    timeline = page[start : page.index("</ol>", start)]
    badges = re.findall(
        r'<span class="badge sms"( title="[^"]*" data-store-address="[^"]*")?>', timeline
    )
    assert badges == [
        ' title="to +15005550198" data-store-address="+15005550198"',
        ' title="from +15005550198" data-store-address="+15005550198"',
        "",
    ]


def test_a_shared_location_shows_its_coordinates_and_a_map_link(db, app, clock):
    """A WhatsApp pin dropped without a name carries nothing but its coordinates (kept as
    a geo: URI): the agent must see them, not "kept with the provider"."""
    received = customer_writes(
        db,
        channel=ChannelKind.WHATSAPP,
        sender=ADA_PHONE,
        text="",
        attachments=(
            Attachment(kind="location", url="geo:51.5072,-0.1276"),
            Attachment(kind="location", url="geo:91,0"),
            Attachment(kind="location", url='geo:1,2"><script>alert(1)</script>'),
        ),
    )
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get(f"/inbox/{received.conversation_id}").text
    assert re.findall(r'data-test="attachment-location"[^>]*>([^<]*)<', page) == [
        "📍 51.5072, -0.1276"
    ]
    assert 'href="https://www.openstreetmap.org/?mlat=51.5072&amp;mlon=-0.1276"' in page
    assert page.count('data-test="attachment-ref">location (kept with the provider)') == 2
    assert "<script>alert(1)" not in page


def test_an_unsent_message_says_so_and_an_edited_one_is_marked(db, app, clock):
    unsent = instagram_dm(db, "mid-1", "my card is 4111…")
    instagram_dm(db, "mid-1", "", kind="deleted")
    instagram_dm(db, "mid-2", "send it to 12 Elm St")
    instagram_dm(db, "mid-2", "send it to 14 Elm St", kind="edited")
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get(f"/inbox/{unsent.conversation_id}").text
    assert re.findall(r'data-test="message-body">([^<]*)<', page) == [
        "(unsent by the customer)",
        "send it to 14 Elm St",
    ]
    assert page.count('data-test="edited"') == 1
    assert "4111" not in page
