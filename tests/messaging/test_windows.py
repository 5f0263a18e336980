"""WhatsApp's and Instagram's windows are kept per number of the store: a customer who
wrote to one number may get free text from that number, not from another of the store's
(Meta refuses it with 131047). The policy's decision, on plain objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley.channels.base import ChannelKind, SendingAccount
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, IdentityKind
from parley.messaging.policy import Reach, decide
from parley.messaging.senders import StoreSenders
from parley.messaging.templates import TemplateContent
from parley.messaging.types import MessageType, Purpose
from parley.messaging.windows import Written

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ADA = "+447911123456"
DEPLOYMENTS = "100000000000001"
OWN = "300000000000003"
SECOND = "300000000000004"
TEMPLATES = {
    ChannelKind.WHATSAPP: TemplateContent(
        text="Your order is on its way", whatsapp_template="order_dispatched"
    ),
    ChannelKind.INSTAGRAM: TemplateContent(text="Your order is on its way"),
    ChannelKind.EMAIL: TemplateContent(text="Your order is on its way", subject="Dispatched"),
}


def _account(address: str) -> SendingAccount:
    return SendingAccount("whatsapp_cloud", address, (("access_token", "t"),), "1")


def _senders(*own: str, receives_on: str | None = DEPLOYMENTS) -> StoreSenders:
    """A store sending from its ``own`` numbers (the first first), receiving also on the
    deployment's number for its webhooks."""
    senders = StoreSenders()
    for address in own:
        senders.add(ChannelKind.WHATSAPP, _account(address))
    if receives_on is not None:
        senders.add_receive_only(ChannelKind.WHATSAPP, receives_on)
    return senders


def _reach(*written: Written, channel: ChannelKind = ChannelKind.WHATSAPP) -> Reach:
    customer = Customer(id=1, workspace_id=1, email="ada@example.com", phone=ADA)
    consent = {
        (channel, Purpose.TRANSACTIONAL): ConsentRecord(
            channel=channel, purpose=Purpose.TRANSACTIONAL, is_granted=True
        )
    }
    return Reach(customer=customer, identities=[], consent=consent, written=written)


def _wrote(to: str | None, *, hours_ago: float = 1, sender: str = ADA) -> Written:
    return Written("whatsapp", sender, to, NOW - timedelta(hours=hours_ago))


def _dispatch(reach: Reach, senders: StoreSenders | None):
    return decide(
        reach,
        message_type=MessageType.DISPATCH,
        purpose=Purpose.TRANSACTIONAL,
        now=NOW,
        templates=TEMPLATES,
        senders=senders,
    )


def test_free_text_goes_from_the_number_she_wrote_to():
    decision = _dispatch(_reach(_wrote(OWN)), _senders(OWN))

    assert (decision.channel, decision.recipient, decision.use_template) == (
        ChannelKind.WHATSAPP,
        ADA,
        False,
    )


def test_a_message_to_the_deployments_number_opens_no_window_with_the_stores_own():
    # Given Ada wrote to the deployment's number an hour ago, and the store sends from its own
    decision = _dispatch(_reach(_wrote(DEPLOYMENTS)), _senders(OWN))

    # Then the dispatch from the store's number is a template, as outside any window
    assert (decision.channel, decision.use_template) == (ChannelKind.WHATSAPP, True)


def test_a_message_to_the_deployments_number_opens_its_window_for_a_store_sending_from_it():
    decision = _dispatch(_reach(_wrote(DEPLOYMENTS)), _senders())

    assert (decision.channel, decision.use_template) == (ChannelKind.WHATSAPP, False)


def test_a_message_to_the_stores_second_number_opens_no_window_with_its_first():
    decision = _dispatch(_reach(_wrote(SECOND)), _senders(OWN, SECOND))

    assert (decision.channel, decision.use_template) == (ChannelKind.WHATSAPP, True)


def test_a_message_from_another_of_her_numbers_opens_no_window_with_this_one():
    decision = _dispatch(_reach(_wrote(OWN, sender="+447700900123")), _senders(OWN))

    assert (decision.channel, decision.use_template) == (ChannelKind.WHATSAPP, True)


def test_a_message_with_no_recorded_number_opens_every_numbers_window():
    decision = _dispatch(_reach(_wrote(None)), _senders(OWN))

    assert (decision.channel, decision.use_template) == (ChannelKind.WHATSAPP, False)


def test_the_window_closes_24_hours_after_her_message_to_that_number():
    senders = _senders(OWN)
    inside = _dispatch(_reach(_wrote(OWN, hours_ago=23.9)), senders)
    outside = _dispatch(_reach(_wrote(OWN, hours_ago=24)), senders)

    assert (inside.use_template, outside.use_template) == (False, True)


def test_an_instagram_message_outside_the_window_is_passed_over_with_the_reason():
    # Given a store that sends its dispatch on Instagram first, then email, and Ada, who
    # last wrote on Instagram two days ago
    written = Written("instagram", "IGSID-5", None, NOW - timedelta(days=2))
    reach = _reach(written, channel=ChannelKind.INSTAGRAM)
    reach.identities.append(
        CustomerIdentity(
            workspace_id=1, customer_id=1, kind=IdentityKind.INSTAGRAM, value="IGSID-5"
        )
    )

    decision = decide(
        reach,
        message_type=MessageType.DISPATCH,
        purpose=Purpose.TRANSACTIONAL,
        now=NOW,
        templates=TEMPLATES,
        preferences={MessageType.DISPATCH: (ChannelKind.INSTAGRAM, ChannelKind.EMAIL)},
        senders=StoreSenders(),
    )

    # Then it goes by email, and the trail says why not on Instagram
    assert decision.channel is ChannelKind.EMAIL
    assert decision.trail == ["instagram: outside the 24-hour window"]
