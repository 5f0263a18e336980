"""Identity resolution across channels: deterministic merges, never across platform ids,
every merge recorded with its reason and reversible."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select

from parley import events
from parley.accounts.models import User
from parley.channels.base import ChannelKind, MarketingPreference
from parley.clock import utc_now
from parley.customers import merges
from parley.customers import service as customers
from parley.customers.identity import whatsapp_phone
from parley.customers.models import (
    ConsentRecord,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    IdentityKind,
)
from parley.demo.seed import DEMO_AGENT_EMAIL, SHOPPERS, seed_demo_team
from parley.errors import Conflict
from parley.inbox import service as inbox
from parley.inbox.models import (
    AssistantTurn,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    EventKind,
    Owner,
)
from parley.messaging.models import Author, Message
from parley.store_events import service as store_events
from parley.store_events.models import StoreEvent
from parley.workspaces.models import Workspace
from support import (
    all_adapters,
    count,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    make_worker,
    post,
    rows,
    seed,
)

PHONE = "+12025550188"
EMAIL = "sam@example.net"


def _platform_record(db, workspace_id: int, *, external_id: str, email: str, phone=None) -> int:
    profile = events.Customer(external_id=external_id, email=email, phone=phone)
    return _platform_record_of(db, workspace_id, profile)


def _platform_record_of(db, workspace_id: int, profile: events.Customer) -> int:
    with db.transaction() as session:
        customer_id = customers.resolve_customer_id(
            session,
            workspace_id=workspace_id,
            contact=customers.contact_from(profile),
            profile=profile,
            consent_source="shopify",
        )
    assert customer_id is not None
    return customer_id


def test_a_store_record_linking_an_sms_sender_and_an_email_sender_merges_them(db, tmp_path):
    workspace_id = seed(db)
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="hi")
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender=EMAIL, text="hello")
    assert by_sms.customer_id != by_email.customer_id

    kept = _platform_record(db, workspace_id, external_id="9100", email=EMAIL, phone=PHONE)

    assert kept == by_email.customer_id
    (merge,) = rows(db, CustomerMerge)
    assert (merge.kept_customer_id, merge.merged_customer_id) == (kept, by_sms.customer_id)
    assert "phone +12025550188" in merge.reason
    assert "shopify" in merge.reason
    identities = rows(db, CustomerIdentity, CustomerIdentity.customer_id == kept)
    assert {(i.kind, i.value) for i in identities} == {
        ("email", EMAIL),
        ("phone", PHONE),
        ("shopify", "9100"),
    }
    # Both open conversations became one: the folded one points at the survivor.
    conversations = {c.id: c for c in rows(db, Conversation)}
    folded = conversations[by_sms.conversation_id]
    assert folded.status == ConversationStatus.RESOLVED
    assert folded.merged_into_id == by_email.conversation_id
    assert {m.conversation_id for m in rows(db, Message)} == {by_email.conversation_id}
    # The next SMS finds the merged profile.
    again = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="still me")
    assert again.customer_id == kept
    assert again.conversation_id == by_email.conversation_id


def test_two_store_customers_sharing_an_email_are_never_merged(db):
    workspace_id = seed(db)
    first = _platform_record(db, workspace_id, external_id="9201", email="family@example.org")
    second = _platform_record(db, workspace_id, external_id="9202", email="family@example.org")
    assert first != second
    assert rows(db, CustomerMerge) == []
    (holder,) = rows(db, CustomerIdentity, CustomerIdentity.value == "family@example.org")
    assert holder.customer_id == first
    shopify_ids = {
        i.customer_id: i.value
        for i in rows(db, CustomerIdentity, CustomerIdentity.kind == "shopify")
    }
    assert (shopify_ids[first], shopify_ids[second]) == ("9201", "9202")


def test_merging_two_store_customers_by_hand_is_refused(db):
    workspace_id = seed(db)
    first = _platform_record(db, workspace_id, external_id="9301", email="a@example.org")
    second = _platform_record(db, workspace_id, external_id="9302", email="b@example.org")
    with db.transaction() as session, pytest.raises(Conflict, match="different store customers"):
        merges.merge_customers(
            session, workspace_id=workspace_id, keep_id=first, merge_id=second, reason="agent"
        )
    assert rows(db, CustomerMerge) == []


def test_an_unmerge_moves_back_exactly_what_the_merge_moved(db, tmp_path):
    workspace_id = seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="hi")
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender=EMAIL, text="hello")
    drain(worker)
    kept = _platform_record(db, workspace_id, external_id="9400", email=EMAIL, phone=PHONE)
    (merge,) = rows(db, CustomerMerge)
    sms_messages = sorted(merge.moved["messages"])

    with db.transaction() as session:
        undone = merges.unmerge_customers(
            session, workspace_id=workspace_id, merge_id=merge.id, reason="not the same person"
        )
        assert undone.undone_at is not None

    phone_identity = rows(db, CustomerIdentity, CustomerIdentity.value == PHONE)[0]
    assert phone_identity.customer_id == by_sms.customer_id
    moved_back = rows(db, Message, Message.customer_id == by_sms.customer_id)
    assert sorted(m.id for m in moved_back) == sms_messages
    assert {m.conversation_id for m in moved_back} == {by_sms.conversation_id}
    conversations = {c.id: c for c in rows(db, Conversation)}
    assert conversations[by_sms.conversation_id].status == ConversationStatus.OPEN
    assert conversations[by_sms.conversation_id].customer_id == by_sms.customer_id
    (separate,) = rows(db, Customer, Customer.id == by_sms.customer_id)
    assert separate.merged_into_id is None
    assert kept == by_email.customer_id
    with db.transaction() as session, pytest.raises(Conflict, match="already undone"):
        merges.unmerge_customers(session, workspace_id=workspace_id, merge_id=merge.id, reason="x")


def _sams_store_record(db, workspace_id: int) -> int:
    """The store's Shopify record for Sam names both his email and his phone."""
    return _platform_record(db, workspace_id, external_id="9500", email=EMAIL, phone=PHONE)


def test_a_hand_off_survives_a_merge_that_folds_its_conversation(db, tmp_path):
    """A6: Sam asked for a person by text; his email conversation, still the assistant's,
    takes in the text one when the store's record joins his profiles. It stays with the
    person, assigned as it was, and the assistant says nothing to his next text."""
    workspace_id = seed(db)
    with db.transaction() as session:
        seed_demo_team(
            session,
            workspace=session.get_one(Workspace, workspace_id),
            admin_email="admin@x.test",
            password="pw-12345678",
            now=utc_now(),
        )
        agent_id = session.scalar(select(User.id).where(User.email == DEMO_AGENT_EMAIL))
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender=EMAIL, text="hello")
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="I want a human")
    drain(worker)
    with db.transaction() as session:
        inbox.assign(
            session,
            workspace_id=workspace_id,
            conversation_id=by_sms.conversation_id,
            assignee_id=agent_id,
            actor="Sam Agent",
        )
    (handed,) = rows(db, Conversation, Conversation.id == by_sms.conversation_id)
    assert handed.owner == Owner.HUMAN
    assistant_said = count(db, Message, Message.author == Author.ASSISTANT)

    assert _sams_store_record(db, workspace_id) == by_email.customer_id

    (survivor,) = rows(db, Conversation, Conversation.id == by_email.conversation_id)
    assert (survivor.status, survivor.owner, survivor.assignee_id, survivor.handoff_reason) == (
        ConversationStatus.OPEN,
        Owner.HUMAN,
        agent_id,
        handed.handoff_reason,
    )
    events = rows(db, ConversationEvent, ConversationEvent.conversation_id == survivor.id)
    assert [(e.kind, e.actor, e.detail) for e in events if e.kind != EventKind.OPENED] == [
        (
            EventKind.HANDED_OFF,
            "merge",
            {"reason": handed.handoff_reason, "from_conversation_id": handed.id},
        ),
        (EventKind.ASSIGNED, "merge", {"from": None, "to": agent_id}),
    ]
    again = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="hello? anyone?")
    drain(worker)
    assert (again.conversation_id, again.assistant_scheduled) == (survivor.id, False)
    assert count(db, Message, Message.author == Author.ASSISTANT) == assistant_said


def test_a_fold_keeps_the_conversation_the_customer_waits_in_open_and_waiting(db, frozen_clock):
    """The kept profile's conversation was snoozed; the folded one has Sam waiting for an
    answer: the survivor is open, waiting since Sam's message, with it unread."""
    workspace_id = seed(db)
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender=EMAIL, text="hello")
    with db.transaction() as session:
        inbox.set_status(
            session,
            workspace_id=workspace_id,
            conversation_id=by_email.conversation_id,
            status=ConversationStatus.SNOOZED,
            snoozed_until=utc_now() + timedelta(days=2),
            actor="agent",
        )
        session.get_one(Conversation, by_email.conversation_id).waiting_since = None
    frozen_clock.advance(timedelta(minutes=5))
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="my parcel?")
    (waiting,) = rows(db, Conversation, Conversation.id == by_sms.conversation_id)

    _sams_store_record(db, workspace_id)

    (survivor,) = rows(db, Conversation, Conversation.id == by_email.conversation_id)
    assert (
        survivor.status,
        survivor.snoozed_until,
        survivor.waiting_since,
        survivor.last_inbound_at,
        survivor.channel,
    ) == (
        ConversationStatus.OPEN,
        None,
        waiting.waiting_since,
        waiting.last_inbound_at,
        ChannelKind.SMS,
    )


def test_a_fold_moves_the_assistant_turns_with_their_messages_and_an_unmerge_moves_them_back(
    db, tmp_path
):
    """A turn belongs to the conversation its message is in: the assistant reads a
    conversation's turns for what was said before and how often it spoke."""
    workspace_id = seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="order 1501")
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender=EMAIL, text="hello")
    drain(worker)
    _sams_store_record(db, workspace_id)

    def turn_places() -> dict[int, tuple[int, int]]:
        messages = {m.id: m.conversation_id for m in rows(db, Message)}
        return {
            turn.message_id: (turn.conversation_id, messages[turn.message_id])
            for turn in rows(db, AssistantTurn)
        }

    survivor = by_email.conversation_id
    assert turn_places() == {
        by_sms.message_id: (survivor, survivor),
        by_email.message_id: (survivor, survivor),
    }
    (merge,) = rows(db, CustomerMerge)
    with db.transaction() as session:
        merges.unmerge_customers(
            session, workspace_id=workspace_id, merge_id=merge.id, reason="not the same person"
        )
    assert turn_places() == {
        by_sms.message_id: (by_sms.conversation_id, by_sms.conversation_id),
        by_email.message_id: (survivor, survivor),
    }


def _a_store_with_customers(db, count: int) -> int:
    """A workspace whose customers each hold an email, a phone and a Shopify id, with the
    planner's statistics up to date (it plans differently for empty tables)."""
    workspace_id = seed(db)
    now = utc_now()
    with db.transaction() as session:
        ids = session.scalars(
            insert(Customer).returning(Customer.id),
            [{"workspace_id": workspace_id, "created_at": now, "updated_at": now}] * count,
        ).all()
        session.execute(
            insert(CustomerIdentity),
            [
                {
                    "workspace_id": workspace_id,
                    "customer_id": customer_id,
                    "kind": kind,
                    "value": f"{kind}-{customer_id}",
                    "created_at": now,
                }
                for customer_id in ids
                for kind in ("email", "phone", "shopify")
            ],
        )
    with db.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    return workspace_id


def test_finding_who_holds_identities_searches_the_identity_index_not_the_workspace(db):
    """Every webhook asks who holds its shopper's identities; looked up by value alone the
    search walked every identity of the store, and ingest slowed as the store grew."""
    workspace_id = _a_store_with_customers(db, 500)
    with db.sessions() as session:
        connection = session.connection()
        statement = customers._select_owners(session).params(
            workspace_id=workspace_id, kinds=["shopify", "email"], values=["9100", EMAIL]
        )
        sql = str(
            statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        )
        if db.is_postgres:
            lines = [row[0] for row in connection.exec_driver_sql(f"EXPLAIN {sql}")]
            scan = next(i for i, line in enumerate(lines) if "on customer_identities" in line)
            assert "Index Scan using uq_customer_identities" in lines[scan]
            assert "kind" in lines[scan + 1]
            assert "value" in lines[scan + 1]
        else:
            plan = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            assert plan[0] == (
                "SEARCH customer_identities USING INDEX sqlite_autoindex_customer_identities_1 "
                "(workspace_id=? AND kind=? AND value=?)"
            )


def test_a_profile_that_loses_the_race_for_its_strongest_identity_is_discarded_whole(db):
    """Another delivery claimed the Shopify id between our read and our insert: the profile
    we made is deleted, and the weaker identities it claimed in the same statement go with
    it, so the winner can take them."""
    workspace_id = seed(db)
    winner = _platform_record(db, workspace_id, external_id="sh-501", email="lee@example.net")
    profile = events.Customer(external_id="sh-501", email="lee@example.net", phone=PHONE)
    contact = customers.contact_from(profile)
    with db.transaction() as session:
        before = {c.id for c in session.query(Customer)}
        created, claimed = customers._create(
            session,
            workspace_id=workspace_id,
            contact=contact,
            profile=profile,
            identities=contact.identities(),
            now=utc_now(),
        )
    assert (created, claimed) == (None, [])
    assert {c.id for c in rows(db, Customer)} == before
    ours = {"sh-501", "lee@example.net", PHONE}
    held = [(i.kind, i.value, i.customer_id) for i in rows(db, CustomerIdentity) if i.value in ours]
    assert sorted(held) == [("email", "lee@example.net", winner), ("shopify", "sh-501", winner)]


def test_a_new_profile_is_made_whole_in_one_insert_with_every_identity_it_holds(db):
    workspace_id = seed(db)
    profile = events.Customer(
        external_id="sh-502", email="Kim@Example.net", phone=PHONE, first_name="Kim"
    )
    customer_id = _platform_record_of(db, workspace_id, profile)
    [kim] = rows(db, Customer, Customer.id == customer_id)
    assert (kim.email, kim.phone, kim.first_name, kim.timezone) == (
        "kim@example.net",
        PHONE,
        "Kim",
        "America/New_York",
    )
    assert sorted(
        (i.kind, i.value)
        for i in rows(db, CustomerIdentity, CustomerIdentity.customer_id == customer_id)
    ) == [
        ("email", "kim@example.net"),
        ("phone", PHONE),
        ("shopify", "sh-502"),
    ]


def test_a_merge_later_in_the_same_transaction_moves_the_store_events_held_before_it(db):
    """A group commit writes several deliveries in one transaction and holds their store
    events until it commits; a delivery that merges an earlier one's shopper must still
    find and move that shopper's events (and record them as moved, for an unmerge)."""
    workspace_id = seed(db)
    customer_id = _platform_record(db, workspace_id, external_id="9401", email=EMAIL)
    with db.transaction() as session:
        workspace = session.get(Workspace, workspace_id)
        for profile in (
            events.Customer(phone=PHONE, first_name="Sam"),
            events.Customer(external_id="9401", email=EMAIL, phone=PHONE),
        ):
            store_events.apply_event(
                session,
                workspace=workspace,
                event=events.Event.build(events.EventType.CUSTOMER_UPDATED, profile, utc_now()),
                delivery_id=None,
                source="shopify",
            )
    (merge,) = rows(db, CustomerMerge)
    assert merge.kept_customer_id == customer_id
    recorded = rows(db, StoreEvent, order_by=lambda e: e.id)
    assert [event.customer_id for event in recorded] == [customer_id, customer_id]
    assert merge.moved["store_events"] == [recorded[0].id]


def _applied_as_a_group(db, workspace_id: int, profiles: list[events.Customer]) -> list[int]:
    """Customer records applied in one transaction after their shoppers were looked up
    together, as a group commit of webhooks does; the customer id each resolved to."""
    with db.transaction() as session:
        workspace = session.get(Workspace, workspace_id)
        records = [
            events.Event.build(events.EventType.CUSTOMER_UPDATED, profile, utc_now())
            for profile in profiles
        ]
        store_events.prefetch_shoppers(session, [(workspace_id, records)])
        for record in records:
            store_events.apply_event(
                session, workspace=workspace, event=record, delivery_id=None, source="shopify"
            )
    resolved = []
    for profile in profiles:
        [identity] = rows(db, CustomerIdentity, CustomerIdentity.value == profile.email)
        resolved.append(identity.customer_id)
    return resolved


def test_a_groups_shoppers_are_looked_up_in_one_statement(db):
    workspace_id = seed(db)
    known = [
        _platform_record(db, workspace_id, external_id=f"95{n}", email=f"known{n}@example.net")
        for n in range(3)
    ]
    lookups: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):
        if "FROM customer_identities JOIN customers" in statement:
            lookups.append(statement)

    profiles = [events.Customer(external_id="9599", email="new@example.net")] + [
        events.Customer(external_id=f"95{n}", email=f"known{n}@example.net") for n in range(3)
    ]
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        resolved = _applied_as_a_group(db, workspace_id, profiles)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(lookups) == 1
    assert resolved[1:] == known
    assert resolved[0] not in known


def test_two_records_of_one_new_shopper_in_a_group_make_one_customer(db):
    workspace_id = seed(db)
    before = len(rows(db, Customer))
    profile = events.Customer(external_id="9601", email="pat@example.net", first_name="Pat")
    first, second = _applied_as_a_group(db, workspace_id, [profile, profile])
    assert first == second
    assert len(rows(db, Customer)) == before + 1


def test_a_later_record_in_a_group_sees_the_profile_an_earlier_one_wrote(db):
    """The lookup read before the group is stale once a record changes the profile: an
    older record later in the group must not overwrite the newer name."""
    workspace_id = seed(db)
    start = utc_now()
    customer_id = _platform_record_of(
        db,
        workspace_id,
        events.Customer(
            external_id="9701", email="ray@example.net", first_name="Old", updated_at=start
        ),
    )
    newer, older = (
        events.Customer(
            external_id="9701",
            email="ray@example.net",
            first_name=name,
            updated_at=start + timedelta(minutes=minutes),
        )
        for name, minutes in (("New", 2), ("Stale", 1))
    )
    assert _applied_as_a_group(db, workspace_id, [newer, older]) == [customer_id, customer_id]
    [ray] = rows(db, Customer, Customer.id == customer_id)
    assert ray.first_name == "New"


def test_a_record_after_a_merge_in_its_group_finds_the_kept_customer(db):
    """A merge moves identities the group's lookup saw on the merged profile: a later
    record naming one of them must find the profile they now belong to."""
    workspace_id = seed(db)
    kept = _platform_record(db, workspace_id, external_id="9801", email=EMAIL)
    with db.transaction() as session:
        merged = customers.resolve_customer_id(
            session,
            workspace_id=workspace_id,
            contact=customers.contact_from(events.Customer(email="sam.b@example.net", phone=PHONE)),
        )
    linking = events.Customer(external_id="9801", email=EMAIL, phone=PHONE)
    later = events.Customer(email="sam.b@example.net", first_name="Sam")
    assert _applied_as_a_group(db, workspace_id, [linking, later]) == [kept, kept]
    (merge,) = rows(db, CustomerMerge)
    assert (merge.kept_customer_id, merge.merged_customer_id) == (kept, merged)
    [sam] = rows(db, Customer, Customer.id == kept)
    assert sam.first_name == "Sam"


def test_two_stages_looking_up_one_stores_shoppers_both_answer(db):
    """A group may hold Shopify deliveries and API events for one store: the second
    stage's lookup adds to the first's instead of replacing it."""
    workspace_id = seed(db)
    known = {
        n: _platform_record(db, workspace_id, external_id=f"99{n}", email=f"two{n}@example.net")
        for n in range(2)
    }
    contacts = {
        n: customers.contact_from(
            events.Customer(external_id=f"99{n}", email=f"two{n}@example.net")
        )
        for n in range(2)
    }
    lookups: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):
        if "FROM customer_identities JOIN customers" in statement:
            lookups.append(statement)

    with db.transaction() as session:
        for n in range(2):
            customers.prefetch_owners(session, workspace_id=workspace_id, contacts=[contacts[n]])
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            resolved = {
                n: customers.resolve_customer_id(
                    session, workspace_id=workspace_id, contact=contacts[n]
                )
                for n in range(2)
            }
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
    assert resolved == known
    assert lookups == []


@pytest.mark.parametrize(
    ("wa_id", "phone"),
    [
        ("+447911123456", "+447911123456"),  # the number itself, as almost everywhere
        ("+5215512345678", "+525512345678"),  # Mexico: the id keeps the 1 the plan dropped
        ("+556181234567", "+5561981234567"),  # Brazil: the id lacks the ninth digit
        ("+5561981234567", "+5561981234567"),  # Brazil: a newer id has it
        ("+556132345678", "+556132345678"),  # Brazil: a landline has eight digits
        ("+5219999", "+5219999"),  # not a number either way: kept as it came
        ("US.13491208655302741918", "US.13491208655302741918"),  # a business-scoped id
    ],
)
def test_a_whatsapp_id_is_read_as_the_phone_it_belongs_to(wa_id, phone):
    assert whatsapp_phone(wa_id) == phone


def test_a_mexican_shopper_writing_from_her_older_whatsapp_id_is_the_stores_customer(
    db, frozen_clock
):
    # Given Frida, a store customer with the Mexican mobile +52 55 1234 5678, whose
    # WhatsApp id was drawn before Mexico dropped the 1 after 52
    seed(db)
    [frida] = rows(db, Customer, Customer.phone == "+525512345678")

    # When she writes on WhatsApp and her order ships within the hour
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender="+5215512345678", text="hola"
    )
    adapters = all_adapters()
    for delivery in deliveries("Frida", order_id=801, number=1801)[:2]:
        post(db, delivery)
    drain(make_worker(db, adapters))

    # Then her message is in her own conversation, and the dispatch went to the WhatsApp
    # id she writes from, as free text inside the window her message opened
    assert received.customer_id == frida.id
    assert len(rows(db, Customer)) == len(SHOPPERS)
    [dispatch] = adapters[ChannelKind.WHATSAPP].sent
    assert (dispatch.to, dispatch.template) == ("+5215512345678", None)


def test_a_whatsapp_marketing_stop_from_an_older_mexican_id_holds_for_the_stores_customer(
    db, frozen_clock
):
    # Given Frida, whose WhatsApp id keeps the 1 after 52
    seed(db)
    [frida] = rows(db, Customer, Customer.phone == "+525512345678")

    # When she stops the store's marketing from WhatsApp's own menu
    with db.transaction() as session:
        changed = inbox.apply_marketing_preference(
            session,
            workspace=session.get_one(Workspace, frida.workspace_id),
            preference=MarketingPreference(
                channel=ChannelKind.WHATSAPP,
                sender="+5215512345678",
                wants_marketing=False,
                detail="marketing messages: stop",
            ),
        )

    # Then the refusal is on her own ledger, and no other profile was made for the id
    assert changed is True
    stops = rows(
        db,
        ConsentRecord,
        ConsentRecord.channel == "whatsapp",
        ConsentRecord.purpose == "marketing",
        ConsentRecord.is_granted.is_(False),
    )
    assert [stop.customer_id for stop in stops] == [frida.id]
    assert len(rows(db, Customer)) == len(SHOPPERS)


def test_a_profile_an_older_mexican_id_made_alone_joins_the_customer_at_her_next_message(
    db, frozen_clock
):
    # Given the profile a message from Frida's older WhatsApp id made before such ids
    # were read as her number (the id itself as its phone and WhatsApp identity)
    seed(db)
    [frida] = rows(db, Customer, Customer.phone == "+525512345678")
    with db.transaction() as session:
        alone = customers.resolve_customer_id(
            session,
            workspace_id=frida.workspace_id,
            contact=customers.Contact(
                external_id=None,
                email=None,
                phone="+5215512345678",
                channel_ids=((IdentityKind.WHATSAPP, "+5215512345678"),),
            ),
        )

    # When she writes again from that id
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender="+5215512345678", text="hola otra vez"
    )

    # Then the message is hers, and the lone profile was merged into hers with the reason
    assert received.customer_id == frida.id
    [merge] = rows(db, CustomerMerge)
    assert (merge.kept_customer_id, merge.merged_customer_id) == (frida.id, alone)
    held = rows(db, CustomerIdentity, CustomerIdentity.value == "+5215512345678")
    assert sorted((i.kind, i.customer_id) for i in held) == [
        ("phone", frida.id),
        ("whatsapp", frida.id),
    ]
