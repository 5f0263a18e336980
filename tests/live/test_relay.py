"""The relay and hub on both engines: only committed events, each to the agents allowed to
see it when it is handed on, in order, with replay after a reconnect."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError

from parley.accounts import service as accounts
from parley.accounts.models import LoginSession
from parley.accounts.service import LoginLimits, SessionPolicy, token_digest
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.live.hub import Ending, Event, Subscriber
from parley.live.models import LiveEvent
from parley.live.outbox import emit
from parley.live.relay import Relay
from support import count, customer_writes
from web_support import ADMIN, AGENT, OTHER_ADMIN, PASSWORD, login_as, seed_team

pytestmark = pytest.mark.anyio
POLICY = SessionPolicy(idle=timedelta(hours=2), absolute=timedelta(hours=12))
LIMITS = LoginLimits(max_failures=10, window=timedelta(minutes=15))


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
async def relay(db):
    relay = Relay(db, policy=POLICY)
    yield relay
    await relay.stop()


def signed_in(db, email: str) -> accounts.SignedIn:
    with db.transaction() as session:
        result = accounts.sign_in(
            session,
            email=email,
            password=PASSWORD,
            ip="127.0.0.1",
            user_agent=None,
            now=utc_now(),
            limits=LIMITS,
        )
    assert isinstance(result, accounts.SignedIn)
    return result


def listen(relay: Relay, db, email: str) -> Subscriber:
    return stream_of(relay, signed_in(db, email))


def stream_of(relay: Relay, signed: accounts.SignedIn) -> Subscriber:
    """The live stream a browser holding ``signed``'s session opens."""
    return relay.hub.subscribe(
        workspace_id=signed.login.workspace_id,
        user_id=signed.login.user_id,
        token_digest=token_digest(signed.token),
    )


async def received(subscriber: Subscriber) -> list[Event | Ending]:
    """Everything waiting for the stream, up to and including the reason it ended."""
    found: list[Event | Ending] = []
    while (item := await subscriber.next(0)) is not None:
        found.append(item)
        if isinstance(item, Ending):
            break
    return found


def kinds(items: list[Event | Ending]) -> list[str]:
    return [item.kind if isinstance(item, Event) else f"ended:{item}" for item in items]


async def test_an_event_of_a_rolled_back_transaction_is_never_delivered(db, team, relay):
    agent = listen(relay, db, AGENT)

    def failing_change() -> None:
        with db.transaction() as session:
            emit(session, workspace_id=team.workspace_id, kind="conversation", conversation_id=1)
            raise RuntimeError("the change failed after announcing it")

    with pytest.raises(RuntimeError):
        failing_change()
    with db.transaction() as session:
        emit(session, workspace_id=team.workspace_id, kind="conversation", conversation_id=2)
    await relay.catch_up()

    items = await received(agent)
    assert [(e.kind, e.conversation_id) for e in items if isinstance(e, Event)] == [
        ("conversation", 2)
    ]
    assert count(db, LiveEvent) == 1


async def test_a_committed_inbound_message_reaches_its_workspace_and_no_other(db, team, relay):
    agent = listen(relay, db, AGENT)
    admin = listen(relay, db, ADMIN)
    other = listen(relay, db, OTHER_ADMIN)

    message = customer_writes(db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="hi")
    await relay.catch_up()

    for subscriber in (agent, admin):
        (event,) = await received(subscriber)
        assert isinstance(event, Event)
        assert event.kind == "message"
        assert event.conversation_id == message.conversation_id
        assert event.data == {"message_id": message.message_id, "direction": "inbound"}
        head, data = event.frame().decode().split("data: ")
        assert head == f"id: {event.id}\nevent: message\n"
        assert data.endswith("}\n\n")
        assert json.loads(data) == {
            "kind": "message",
            "conversation_id": message.conversation_id,
            "data": event.data,
        }
    assert await received(other) == []


async def test_an_event_for_one_user_reaches_only_that_user(db, team, relay):
    agent = listen(relay, db, AGENT)
    admin = listen(relay, db, ADMIN)

    with db.transaction() as session:
        emit(
            session,
            workspace_id=team.workspace_id,
            kind="conversation",
            conversation_id=5,
            user_id=team.agent_id,
            data={"change": "assigned"},
        )
    await relay.catch_up()

    assert kinds(await received(agent)) == ["conversation"]
    assert await received(admin) == []


async def test_a_removed_agent_is_cut_off_before_any_later_event_and_a_colleague_is_not(
    db, team, relay
):
    agent = listen(relay, db, AGENT)
    admin = listen(relay, db, ADMIN)

    with db.transaction() as session:
        accounts.remove_member(
            session,
            login=login_as(session, team.workspace_id, team.admin_id),
            user_id=team.agent_id,
            ip="127.0.0.1",
            now=utc_now(),
        )
    message = customer_writes(db, channel=ChannelKind.SMS, sender="+447911000111", text="hello")
    await relay.catch_up()  # the removal and the later message arrive in one batch

    assert await received(agent) == [Ending.REVOKED]
    assert agent.ending is Ending.REVOKED
    (event,) = await received(admin)
    assert isinstance(event, Event)
    assert (event.kind, event.conversation_id) == ("message", message.conversation_id)
    assert admin.ending is None


async def test_a_removal_that_could_not_be_checked_holds_back_every_later_event(
    db, team, relay, monkeypatch
):
    agent = listen(relay, db, AGENT)
    admin = listen(relay, db, ADMIN)
    with db.transaction() as session:
        accounts.remove_member(
            session,
            login=login_as(session, team.workspace_id, team.admin_id),
            user_id=team.agent_id,
            ip="127.0.0.1",
            now=utc_now(),
        )
    message = customer_writes(db, channel=ChannelKind.SMS, sender="+447911000111", text="hello")
    check = relay._allowed

    def database_restarting(digests: list[str]) -> set[tuple[str, int, int]]:
        raise OperationalError("SELECT", {}, Exception("the database is restarting"))

    monkeypatch.setattr(relay, "_allowed", database_restarting)
    with pytest.raises(OperationalError):
        await relay.catch_up()
    assert await received(agent) == []
    assert await received(admin) == []

    monkeypatch.setattr(relay, "_allowed", check)
    await relay.catch_up()  # the relay's next turn, once the database answers

    assert await received(agent) == [Ending.REVOKED]
    (event,) = await received(admin)
    assert isinstance(event, Event)
    assert (event.kind, event.conversation_id) == ("message", message.conversation_id)


async def test_a_password_change_ends_the_old_sessions_streams_not_the_new_one(db, team, relay):
    old = listen(relay, db, AGENT)
    signed = signed_in(db, AGENT)
    with db.transaction() as session:
        changed = accounts.change_password(
            session,
            login=signed.login,
            current_password=PASSWORD,
            new_password="a brand new passphrase",
            ip="127.0.0.1",
            user_agent=None,
            now=utc_now() + timedelta(seconds=1),
            limits=LIMITS,
        )
    assert isinstance(changed, accounts.SignedIn)
    # The browser that changed it reloads with its fresh session before the relay catches up.
    fresh = stream_of(relay, changed)
    await relay.catch_up()

    assert await received(old) == [Ending.REVOKED]
    assert fresh.ending is None
    assert await received(fresh) == []


async def test_signing_out_ends_that_sessions_stream_at_once_and_no_other(db, team, relay):
    # Given the agent signed in twice (two browsers), each with a stream open
    leaving = signed_in(db, AGENT)
    stream = stream_of(relay, leaving)
    staying = listen(relay, db, AGENT)

    # When one browser signs out and a customer then writes
    with db.transaction() as session:
        accounts.sign_out(session, token=leaving.token)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="hi")
    await relay.catch_up()

    # Then its stream ends before the message; the other browser's gets it
    assert await received(stream) == [Ending.REVOKED]
    assert kinds(await received(staying)) == ["message"]


async def test_switching_store_ends_the_old_sessions_stream_at_once(db, team, relay):
    # Given the admin, also an agent of the other store, watching the demo store's inbox
    with db.transaction() as session:
        accounts.add_member(
            session,
            workspace_id=team.other_workspace_id,
            user_id=team.admin_id,
            role="agent",
            now=utc_now(),
        )
    signed = signed_in(db, ADMIN)
    stream = stream_of(relay, signed)

    # When they switch to the other store, and a demo customer then writes
    with db.transaction() as session:
        accounts.switch_workspace(
            session,
            login=signed.login,
            slug="other",
            ip="127.0.0.1",
            user_agent=None,
            now=utc_now(),
        )
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="hi")
    await relay.catch_up()

    # Then the old stream ended before the message
    assert await received(stream) == [Ending.REVOKED]


async def test_signing_out_a_session_that_has_ended_announces_nothing(db, team, relay):
    signed = signed_in(db, AGENT)
    stream = stream_of(relay, signed)
    with db.transaction() as session:
        accounts.sign_out(session, token="not a session anyone holds")
    await relay.catch_up()
    assert stream.ending is None
    assert count(db, LiveEvent) == 0


async def test_an_event_after_an_erasure_took_the_newest_rows_is_still_delivered(db, team, relay):
    # Given the agent saw Ada's message, the newest event there is
    agent = listen(relay, db, AGENT)
    ada = customer_writes(db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="hi")
    await relay.catch_up()
    assert kinds(await received(agent)) == ["message"]

    # When an erasure deletes her conversation's events, and Grace then writes
    with db.transaction() as session:
        session.execute(delete(LiveEvent).where(LiveEvent.conversation_id == ada.conversation_id))
    customer_writes(db, channel=ChannelKind.SMS, sender="+12025550143", text="hello")
    await relay.catch_up()

    # Then Grace's message reaches the agent: no id is handed out twice
    assert kinds(await received(agent)) == ["message"]


async def test_a_deleted_session_stops_at_the_periodic_check(db, team, relay):
    agent = listen(relay, db, AGENT)
    admin = listen(relay, db, ADMIN)
    with db.transaction() as session:
        session.execute(delete(LoginSession).where(LoginSession.user_id == team.agent_id))

    await relay.revalidate(relay.hub.subscribers())

    assert agent.ending is Ending.REVOKED
    assert admin.ending is None


async def test_an_idle_session_stops_at_the_periodic_check(db, team):
    idle_relay = Relay(db, policy=SessionPolicy(idle=timedelta(0), absolute=timedelta(hours=1)))
    try:
        agent = listen(idle_relay, db, AGENT)
        await idle_relay.revalidate(idle_relay.hub.subscribers())
        assert agent.ending is Ending.REVOKED
    finally:
        await idle_relay.stop()


async def test_replay_returns_the_newer_rows_this_user_may_see(db, team, relay):
    with db.transaction() as session:
        for kind, workspace_id, user_id in [
            ("message", team.workspace_id, None),  # already seen
            ("message_status", team.workspace_id, None),
            ("conversation", team.workspace_id, team.admin_id),  # someone else's
            ("conversation", team.other_workspace_id, None),  # another store's
            ("member_removed", team.workspace_id, team.agent_id),  # never shown
            ("conversation", team.workspace_id, team.agent_id),
        ]:
            emit(session, workspace_id=workspace_id, kind=kind, user_id=user_id)
    await relay.catch_up()
    with db.sessions() as session:
        ids = list(session.scalars(select(LiveEvent.id).order_by(LiveEvent.id)))

    replayed = await relay.replay(
        workspace_id=team.workspace_id, user_id=team.agent_id, after=ids[0]
    )

    assert [(e.id, e.kind) for e in replayed] == [
        (ids[1], "message_status"),
        (ids[5], "conversation"),
    ]


def commit_event(db, workspace_id: int, event_id: int) -> None:
    """A row with this id, as a transaction that was handed the id earlier commits it."""
    with db.transaction() as session:
        session.add(
            LiveEvent(
                id=event_id,
                workspace_id=workspace_id,
                kind="conversation",
                conversation_id=event_id,
                data={},
                created_at=utc_now(),
            )
        )


async def test_a_row_committed_after_a_higher_id_is_still_delivered(db, team, relay):
    agent = listen(relay, db, AGENT)

    def commit(event_id: int) -> None:
        commit_event(db, team.workspace_id, event_id)

    commit(1001)
    await relay.catch_up()
    commit(1003)  # 1002 is still in flight in another transaction
    await relay.catch_up()
    commit(1002)
    await relay.catch_up()
    await relay.catch_up()

    items = await received(agent)
    assert [e.conversation_id for e in items if isinstance(e, Event)] == [1001, 1003, 1002]


async def test_a_row_in_flight_when_the_relay_starts_is_still_delivered(db, team, relay):
    commit_event(db, team.workspace_id, 1001)
    commit_event(db, team.workspace_id, 1003)  # 1002 is still in flight in another process
    await relay.start()
    agent = listen(relay, db, AGENT)

    commit_event(db, team.workspace_id, 1002)
    commit_event(db, team.workspace_id, 1004)

    items = [await agent.next(5.0), await agent.next(5.0)]  # the relay's own turns
    assert [e.conversation_id for e in items if isinstance(e, Event)] == [1002, 1004]


async def test_pruning_drops_old_rows_but_keeps_the_newest(db, team, relay, frozen_clock):
    with db.transaction() as session:
        emit(session, workspace_id=team.workspace_id, kind="message")
        emit(session, workspace_id=team.workspace_id, kind="message")
    frozen_clock.advance(timedelta(hours=2))

    await relay.catch_up()
    relay.prune()

    with db.sessions() as session:
        assert list(session.scalars(select(LiveEvent.id))) == [relay.last_id]


@pytest.mark.parametrize("turns", range(6))
async def test_stop_ends_the_relay_even_when_a_wake_races_the_cancellation(db, turns):
    """Python 3.11's ``asyncio.wait_for`` swallows a cancellation that lands as the awaited
    wake completes; the relay then polled on forever and a server's shutdown hung."""
    relay = Relay(db, policy=POLICY)
    await relay.start()
    for _ in range(3):
        await asyncio.sleep(0)
    relay._wake.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await relay.stop()
    assert relay._tasks == []
