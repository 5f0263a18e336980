"""The agents' conversation list: filters, search, unread counts, waiting-time order, and
nothing from another workspace."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from parley.channels.base import ChannelKind
from parley.commerce.models import Order
from parley.inbox.models import (
    AssistantTurn,
    Conversation,
    ConversationRead,
    ConversationStatus,
)
from parley.inbox.service import assign, hand_off, set_status
from parley.messaging.models import Message
from support import count, customer_writes
from web_support import AGENT, OTHER_ADMIN, browser, seed_team, sign_in, web_app

ROW = re.compile(r'data-test="conversation-row" data-conversation-id="(\d+)"')
ADA_PHONE = "+447911123456"
NEXT = re.compile(r'href="([^"]+)" data-test="next-page"')


@pytest.fixture
def team(db, clock):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


@pytest.fixture
def clock(frozen_clock):
    """Installed before the team is seeded: accounts must not be newer than the clock."""
    return frozen_clock


def chat(db, clock, name, *, text="hello", channel=ChannelKind.WEBCHAT, sender=None, slug="demo"):
    """A customer writes one minute after the previous one; returns the conversation id."""
    clock.now += timedelta(minutes=1)
    received = customer_writes(
        db,
        channel=channel,
        sender=sender or f"visitor-{name.lower().replace(' ', '-')}",
        text=text,
        sender_name=name,
        slug=slug,
    )
    return received.conversation_id


def listed(client, query=""):
    page = client.get(f"/inbox/_list?{query}")
    assert page.status_code == 200, page.text
    return [int(found) for found in ROW.findall(page.text)]


def change(db, conversation_id, **values):
    with db.transaction() as session:
        session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(**values)
        )


def test_the_list_puts_whoever_waited_longest_first_and_nobody_waiting_last(db, app, clock):
    first = chat(db, clock, "Ann First")
    second = chat(db, clock, "Bob Second")
    answered = chat(db, clock, "Cy Answered")
    change(db, answered, waiting_since=None)
    third = chat(db, clock, "Di Third")
    with browser(app) as client:
        sign_in(client, AGENT)
        assert listed(client) == [first, second, third, answered]


def test_status_filter_defaults_to_open_and_pending(db, app, team, clock):
    opened = chat(db, clock, "Open Olga")
    pending = chat(db, clock, "Pending Pat")
    snoozed = chat(db, clock, "Snoozed Sue")
    resolved = chat(db, clock, "Resolved Rae")
    change(db, pending, status="pending")
    change(db, snoozed, status="snoozed")
    with db.transaction() as session:
        set_status(
            session,
            workspace_id=team.workspace_id,
            conversation_id=resolved,
            status=ConversationStatus.RESOLVED,
            actor="test",
        )
    with browser(app) as client:
        sign_in(client, AGENT)
        assert listed(client) == [opened, pending]
        assert listed(client, "status=snoozed") == [snoozed]
        assert listed(client, "status=resolved") == [resolved]
        assert listed(client, "status=open") == [opened]
        assert sorted(listed(client, "status=all")) == sorted([opened, pending, snoozed, resolved])


def test_channel_owner_and_assignee_filters(db, app, team, clock):
    web = chat(db, clock, "Web Wendy")
    whatsapp = chat(db, clock, "Ada", channel=ChannelKind.WHATSAPP, sender=ADA_PHONE)
    mine = chat(db, clock, "Mine Mo")
    admins = chat(db, clock, "Admin Al")
    with db.transaction() as session:
        for conversation_id, user_id in ((mine, team.agent_id), (admins, team.admin_id)):
            assign(
                session,
                workspace_id=team.workspace_id,
                conversation_id=conversation_id,
                assignee_id=user_id,
                actor="test",
            )
        hand_off(
            session,
            workspace_id=team.workspace_id,
            conversation_id=whatsapp,
            reason="asked for a human",
            actor="assistant",
        )
    with browser(app) as client:
        sign_in(client, AGENT)
        assert listed(client, "channel=whatsapp") == [whatsapp]
        assert listed(client, "channel=webchat") == [web, mine, admins]
        assert listed(client, "owner=human") == [whatsapp]
        assert listed(client, "owner=assistant") == [web, mine, admins]
        assert listed(client, "assignee=mine") == [mine]
        assert listed(client, "assignee=unassigned") == [web, whatsapp]
        assert listed(client, f"assignee={team.admin_id}") == [admins]
        # A user of another workspace is not a teammate: the filter is dropped, not applied.
        assert listed(client, f"assignee={team.other_admin_id}") == [web, whatsapp, mine, admins]


def test_label_is_the_latest_assistant_turns_correction_or_intent(db, app, team, clock):
    tracked = chat(db, clock, "Track Tom")
    relabelled = chat(db, clock, "Label Liz")
    chat(db, clock, "Plain Pia")
    with db.transaction() as session:
        for conversation_id, intent, label in (
            (tracked, "greeting", None),
            (tracked, "track_order", None),
            (relabelled, "track_order", "get_refund"),
        ):
            message_id = session.scalar(
                select(Message.id).where(Message.conversation_id == conversation_id).limit(1)
            )
            session.add(
                AssistantTurn(
                    workspace_id=team.workspace_id,
                    conversation_id=conversation_id,
                    message_id=message_id,
                    intent=intent,
                    confidence=0.9,
                    entities={},
                    action="answered",
                    lookups=[],
                    label=label,
                    created_at=clock.now,
                )
            )
    with browser(app) as client:
        sign_in(client, AGENT)
        assert listed(client, "label=track_order") == [tracked]
        assert listed(client, "label=get_refund") == [relabelled]
        assert listed(client, "label=greeting") == []
        page = client.get("/inbox/_list").text
    assert 'data-test="label">track order<' in page
    assert 'data-test="label">get refund<' in page


@pytest.mark.parametrize(
    "query_case",
    [
        "Lovelace",
        "ada lOVElace",
        "ADA@example.com",
        "+44 7911 123456",
        "447911123456",
        "#4242",
        "4242",
    ],
)
def test_search_finds_the_customer_by_name_email_phone_and_order_number(
    db, app, team, clock, query_case
):
    ada = chat(db, clock, "Ada", channel=ChannelKind.WHATSAPP, sender=ADA_PHONE)
    chat(db, clock, "Someone Else")
    with db.transaction() as session:
        customer_id = session.get_one(Conversation, ada).customer_id
        session.add(
            Order(
                workspace_id=team.workspace_id,
                customer_id=customer_id,
                external_id="order-4242",
                number="#4242",
                currency="GBP",
                line_items=[],
                created_at=clock.now,
                updated_at=clock.now,
            )
        )
    with browser(app) as client:
        sign_in(client, AGENT)
        assert listed(client, f"q={query_case.replace('+', '%2B').replace('#', '%23')}") == [ada]


def test_search_text_is_data_not_sql_or_a_wildcard(db, app, clock):
    chat(db, clock, "Ann")
    chat(db, clock, "Bob")
    with browser(app) as client:
        sign_in(client, AGENT)
        for query in ("%25", "_", "' OR 1=1 --", "%22)); DROP TABLE conversations; --"):
            assert listed(client, f"q={query}") == [], query
        # Filter values outside their allow-lists are ignored, not interpolated.
        assert len(listed(client, "status=open'%20OR%201=1&channel=x&owner=y&label=z")) == 2
        # So is a cursor that is not one, or names a moment no date can hold.
        for after in ("1.1.1'%20OR%201=1", "999999999999999999.1.1", "-.999999999999999999.1"):
            assert len(listed(client, f"after={after}")) == 2, after
    assert count(db, Conversation) == 2


def test_unread_counts_per_row_and_per_tab_move_with_the_read_marker(db, app, team, clock):
    mine = chat(db, clock, "Mine Mo", text="one")
    clock.now += timedelta(seconds=5)
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender="visitor-mine-mo", text="two")
    other = chat(db, clock, "Other Ola")
    with db.transaction() as session:
        assign(
            session,
            workspace_id=team.workspace_id,
            conversation_id=mine,
            assignee_id=team.agent_id,
            actor="test",
        )
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get("/inbox/_list").text
        assert unread_of(page) == {mine: 2, other: 1}
        assert tab_counts(page) == {"all": 2, "mine": 1, "unassigned": 1}

        clock.now += timedelta(minutes=1)
        assert client.get(f"/inbox/{mine}").status_code == 200
        page = client.get("/inbox/_list").text
        assert unread_of(page) == {other: 1}
        assert tab_counts(page) == {"all": 1, "unassigned": 1}

        clock.now += timedelta(minutes=1)
        customer_writes(db, channel=ChannelKind.WEBCHAT, sender="visitor-mine-mo", text="three")
        page = client.get("/inbox/_list").text
        assert unread_of(page) == {mine: 1, other: 1}
    assert count(db, ConversationRead) == 1


def test_a_message_delivered_after_the_agent_read_is_unread_whenever_it_was_written(db, app, clock):
    """WhatsApp dates a message when Ada wrote it and may deliver it a minute later, after
    the agent opened the conversation: it is unread on its row, as the tab counts it."""
    conversation_id = chat(db, clock, "Ada Late", channel=ChannelKind.WHATSAPP, sender=ADA_PHONE)
    clock.now += timedelta(seconds=10)
    with browser(app) as client:
        sign_in(client, AGENT)
        assert client.get(f"/inbox/{conversation_id}").status_code == 200
        written = clock.now - timedelta(seconds=2)
        clock.now += timedelta(minutes=1)
        customer_writes(
            db, channel=ChannelKind.WHATSAPP, sender=ADA_PHONE, text="still there?", sent_at=written
        )
        page = client.get("/inbox/_list").text
    assert unread_of(page) == {conversation_id: 1}
    assert tab_counts(page) == {"all": 1, "unassigned": 1}


def unread_of(html):
    found = {}
    for row in re.findall(r'<a class="conv-row.*?</a>', html, flags=re.S):
        conversation_id = int(re.search(r'data-conversation-id="(\d+)"', row).group(1))
        unread = re.search(r'data-test="unread"[^>]*>(\d+)<', row)
        if unread:
            found[conversation_id] = int(unread.group(1))
    return found


def tab_counts(html):
    return {
        tab: int(number)
        for tab, number in re.findall(
            r'data-tab="(\w+)"[^>]*>[^<]*<span class="count" data-test="tab-unread">(\d+)<', html
        )
    }


def test_a_page_holds_fifty_and_the_next_page_the_rest(db, app, clock):
    ids = [chat(db, clock, f"Shopper {n}") for n in range(51)]
    with browser(app) as client:
        sign_in(client, AGENT)
        first = client.get("/inbox").text
        assert [int(i) for i in ROW.findall(first)] == ids[:50]
        next_href = NEXT.search(first).group(1).replace("&amp;", "&")
        assert next_href.startswith("/inbox?page=2&after=")
        assert listed(client, next_href.removeprefix("/inbox?")) == ids[50:]


def test_another_workspaces_conversation_is_404_with_none_of_its_data(db, app, team, clock):
    theirs = chat(db, clock, "Secret Sam", text="my private parcel question", slug="other")
    ours = chat(db, clock, "Our Olive")
    with browser(app) as client:
        sign_in(client, AGENT)
        assert listed(client, "status=all") == [ours]
        for path in (f"/inbox/{theirs}", f"/inbox/{theirs}/_timeline"):
            for accept in ("text/html", "application/json"):
                answer = client.get(path, headers={"accept": accept})
                assert answer.status_code == 404, path
                assert "Secret Sam" not in answer.text
                assert "private parcel" not in answer.text
    assert count(db, ConversationRead) == 0
    with browser(app) as client:
        sign_in(client, OTHER_ADMIN)
        assert listed(client) == [theirs]


def test_the_inbox_page_needs_a_sign_in_and_carries_the_live_scripts(db, app, clock):
    chat(db, clock, "Ann")
    with browser(app) as client:
        # The list's own script fetches it (a browser says so); a page view is sent to log in.
        assert client.get("/inbox/_list", headers={"sec-fetch-mode": "cors"}).status_code == 401
        sign_in(client, AGENT)
        page = client.get("/inbox").text
    for asset in (
        '<script src="/static/live.js" defer>',
        '<script src="/static/composer.js" defer>',
        '<script src="/static/inbox.js" defer>',
        'href="/static/inbox.css"',
        'href="/static/composer.css"',
        'href="/static/sidebar.css"',
    ):
        assert asset in page
    assert 'data-list-url="/inbox/_list?"' in page


def test_the_next_page_repeats_and_loses_no_conversation_when_new_ones_arrive(db, app, clock):
    """Page 2 continues after the last row the agent saw, not at row 51 of a list that
    has since grown: a customer writing in meanwhile sorts above it and shifts nothing."""
    ids = [chat(db, clock, f"Shopper {n}") for n in range(51)]
    for conversation_id in ids:
        change(db, conversation_id, waiting_since=None)
    with browser(app) as client:
        sign_in(client, AGENT)
        first = client.get("/inbox").text
        assert [int(i) for i in ROW.findall(first)] == ids[:0:-1]
        next_href = NEXT.search(first).group(1).replace("&amp;", "&")
        newcomer = chat(db, clock, "New Nia")
        second = client.get(next_href).text
        assert [int(i) for i in ROW.findall(second)] == [ids[0]]
        assert NEXT.search(second) is None
        assert [int(i) for i in ROW.findall(client.get("/inbox").text)][:2] == [newcomer, ids[50]]
