"""A store's email goes from its own address once the domain's reading shows the store's
verification record and SPF, DKIM and DMARC; until then, and whenever that stops being
so, from the deployment's. On both engines."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from parley.channels.base import ChannelKind
from parley.channels.email_smtp.domain import DnsUnavailable, SendingDomain
from parley.clock import utc_now
from parley.db import Database
from parley.jobs.models import Job, JobStatus
from parley.messaging import email_sender
from parley.messaging.models import Message, SenderPace, SendingDomainCheck
from parley.messaging.pace import Allowance, Pacer, Sender
from parley.messaging.sending_domain import CHECK_SCHEDULE, record
from parley.workspaces.models import Workspace
from parley.workspaces.service import create_workspace
from support import (
    SECRET,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    make_worker,
    post,
    promotions_without_caps,
    recording_adapters,
    rows,
    run_domain_check,
    seed,
)

DEPLOYMENT = "demo.parley.test"
NORTH = "north.example"
KEY = "v=DKIM1; k=rsa; p=MIIBIjANBgkq"


def _reading(domain: str, *, tokens: tuple[str, ...] = (), dmarc: bool = True) -> SendingDomain:
    return SendingDomain(
        domain,
        ("v=spf1 include:relay.example -all",),
        "s1",
        (KEY,),
        domain,
        ("v=DMARC1; p=none",) if dmarc else (),
        tokens,
    )


def _store(db: Database, slug: str, address: str | None = None) -> tuple[int, str]:
    """A store on the deployment; with ``address``, it asked its email to go from it."""
    with db.transaction() as session:
        workspace = create_workspace(session, slug=slug, name=slug.title(), shopify_secret=SECRET)
        token = ""
        if address is not None:
            sender = email_sender.checked(address, "s1", token=None)
            workspace.settings = {**workspace.settings, email_sender.SETTING: sender.as_settings()}
            token = sender.token
        return workspace.id, token


def _read(db: Database, found: SendingDomain) -> None:
    with db.transaction() as session:
        record(session, found, now=utc_now())


def _confirm(db: Database, slug: str, order_id: int) -> None:
    placed, *_ = deliveries("Grace", order_id=order_id, number=order_id + 1000)
    post(db, placed, slug=slug)


def _from_addresses(adapters) -> list[tuple[str, str | None]]:
    """Each email sent: the store's name, and its own address (None: the deployment's)."""
    return sorted(
        (message.sender_name or "", message.account.address if message.account else None)
        for message in adapters[ChannelKind.EMAIL].sent
    )


def test_a_store_whose_domain_is_proven_and_set_up_sends_from_its_own_address(db, frozen_clock):
    # Given north asked for orders@north.example and published its record, and the bare
    # store sends from the deployment's
    seed(db)
    north, token = _store(db, "north", "orders@north.example")
    _store(db, "bare")
    _read(db, _reading(NORTH, tokens=("someone-elses", token)))
    adapters = recording_adapters()

    # When each confirms an order
    _confirm(db, "north", 701)
    _confirm(db, "bare", 901)
    drain(make_worker(db, adapters))

    # Then north's goes from its own address, bare's from the deployment's
    assert _from_addresses(adapters) == [("Bare", None), ("North", "orders@north.example")]
    assert {m.status for m in rows(db, Message, Message.workspace_id == north)} == {"sent"}


@pytest.mark.parametrize(
    ("published", "dmarc", "why"),
    [
        pytest.param(False, True, "no_verification_record", id="not_proven"),
        pytest.param(True, False, "no DMARC record", id="not_set_up"),
    ],
)
def test_a_domain_not_proven_or_not_set_up_leaves_the_store_on_the_deployments_address(
    db, frozen_clock, published, dmarc, why
):
    seed(db)
    north, token = _store(db, "north", "orders@north.example")
    _read(db, _reading(NORTH, tokens=(token,) if published else (), dmarc=dmarc))
    adapters = recording_adapters()

    _confirm(db, "north", 701)
    drain(make_worker(db, adapters))

    assert _from_addresses(adapters) == [("North", None)]
    with db.transaction() as session:
        sender = email_sender.EmailSender.of(session.get_one(Workspace, north).settings)
        assert sender is not None
        reading = email_sender.readings(session, [NORTH])[NORTH]
        problems = email_sender.problems(sender, reading, now=utc_now())
    assert problems is not None
    expected = (
        f'no TXT record "parley-verification={token}" at {NORTH}'
        if why == "no_verification_record"
        else why
    )
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_domain_never_read_or_not_read_for_a_day_vouches_for_nothing(db, frozen_clock):
    seed(db)
    _, token = _store(db, "north", "orders@north.example")
    adapters = recording_adapters()
    _confirm(db, "north", 701)
    drain(make_worker(db, adapters))

    _read(db, _reading(NORTH, tokens=(token,)))
    frozen_clock.advance(timedelta(hours=23))
    _confirm(db, "north", 702)
    drain(make_worker(db, adapters))
    frozen_clock.advance(timedelta(hours=2))
    _confirm(db, "north", 703)
    drain(make_worker(db, adapters))

    sent = [
        message.account.address if message.account else None
        for message in adapters[ChannelKind.EMAIL].sent
    ]
    assert sent == [None, "orders@north.example", None]


def test_another_stores_verification_record_does_not_prove_the_domain_for_this_one(
    db, frozen_clock
):
    # Given north proved north.example, and "copycat" asks to send as billing@ on it
    seed(db)
    _, north_token = _store(db, "north", "orders@north.example")
    _store(db, "copycat", "billing@north.example")
    _read(db, _reading(NORTH, tokens=(north_token,)))
    adapters = recording_adapters()

    _confirm(db, "north", 701)
    _confirm(db, "copycat", 801)
    drain(make_worker(db, adapters))

    assert _from_addresses(adapters) == [("Copycat", None), ("North", "orders@north.example")]


def test_the_assistants_answer_goes_from_the_stores_own_address(db, frozen_clock, tmp_path):
    seed(db)
    _, token = _store(db, "north", "orders@north.example")
    _read(db, _reading(NORTH, tokens=(token,)))
    adapters = recording_adapters()

    customer_writes(
        db, channel=ChannelKind.EMAIL, sender="grace@example.com", text="hello", slug="north"
    )
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path))  # type: ignore[arg-type]

    assert _from_addresses(adapters) == [("North", "orders@north.example")]


def test_a_promotion_from_the_stores_own_ready_domain_is_not_held_for_the_deployments(
    db, frozen_clock
):
    # Given the deployment's domain lacks DMARC (its promotions are not emailed), and the
    # demo store sends from its own domain, proven and set up
    demo = seed(db)
    promotions_without_caps(db)
    with db.transaction() as session:
        workspace = session.get_one(Workspace, demo)
        sender = email_sender.checked("news@juniper.example", "s1", token=None)
        workspace.settings = {**workspace.settings, email_sender.SETTING: sender.as_settings()}
    _read(db, _reading(DEPLOYMENT, dmarc=False))
    _read(db, _reading("juniper.example", tokens=(sender.token,)))
    adapters = recording_adapters()

    placed, *_ = deliveries("Ada", order_id=9100, number=19100)
    post(db, placed)
    drain(make_worker(db, adapters, sending_domain=DEPLOYMENT))

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.account is not None
    assert email.account.address == "news@juniper.example"


def test_a_stores_own_address_is_paced_with_the_relay_it_shares(db, frozen_clock):
    # Given a relay that takes one message a second, and north sending from its own address
    seed(db)
    _, token = _store(db, "north", "orders@north.example")
    _store(db, "bare")
    _read(db, _reading(NORTH, tokens=(token,)))
    pacer = Pacer({ChannelKind.EMAIL: Sender("email", Allowance(1))})
    adapters = recording_adapters()

    # When both stores confirm an order in the same batch
    _confirm(db, "north", 701)
    _confirm(db, "bare", 901)
    drain(make_worker(db, adapters, pacer=pacer))

    # Then one relay row paced both: the second waited its second
    assert [row.sender for row in rows(db, SenderPace, order_by=lambda m: m.sender)] == ["email"]
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    frozen_clock.advance(timedelta(seconds=1))
    drain(make_worker(db, adapters, pacer=pacer))
    assert _from_addresses(adapters) == [("Bare", None), ("North", "orders@north.example")]


def _check_hourly(db: Database, answers: dict[str, SendingDomain | Exception]) -> list[tuple]:
    """The hourly check once, through a worker; what it asked DNS, in order."""
    asked: list[tuple[str, str | None]] = []

    async def read(domain: str, dkim_selector: str | None) -> SendingDomain:
        asked.append((domain, dkim_selector))
        answer = answers[domain]
        if isinstance(answer, Exception):
            raise answer
        return answer

    run_domain_check(db, read, DEPLOYMENT)
    return asked


def test_the_hourly_check_reads_each_stores_own_domain_with_its_selector(db, frozen_clock):
    seed(db)
    _, token = _store(db, "north", "orders@north.example")
    with db.transaction() as session:
        gone = create_workspace(session, slug="gone", name="Gone", shopify_secret=SECRET)
        sender = email_sender.checked("a@gone.example", "", token=None)
        gone.settings = {email_sender.SETTING: sender.as_settings()}
        gone.is_active = False

    asked = _check_hourly(
        db, {DEPLOYMENT: _reading(DEPLOYMENT), NORTH: _reading(NORTH, tokens=(token,))}
    )

    assert asked == [(DEPLOYMENT, None), (NORTH, "s1")]
    readings = {
        row.domain: row.verifications
        for row in rows(db, SendingDomainCheck, order_by=lambda m: m.domain)
    }
    assert readings == {DEPLOYMENT: [], NORTH: [token]}
    [job] = rows(db, Job, Job.kind == CHECK_SCHEDULE.kind)
    assert job.status == JobStatus.DONE


def test_a_stores_domain_that_dns_does_not_answer_keeps_its_reading_and_retries_nothing(
    db, frozen_clock, caplog
):
    seed(db)
    _, token = _store(db, "north", "orders@north.example")
    _read(db, _reading(NORTH, tokens=(token,)))
    before = frozen_clock.now
    frozen_clock.advance(timedelta(hours=1))

    with caplog.at_level(logging.WARNING, logger="parley.messaging.sending_domain"):
        _check_hourly(
            db, {DEPLOYMENT: _reading(DEPLOYMENT), NORTH: DnsUnavailable("DNS did not answer")}
        )

    [north] = rows(
        db, SendingDomainCheck, SendingDomainCheck.domain == NORTH, order_by=lambda m: m.domain
    )
    assert (north.verifications, north.checked_at) == ([token], before)
    [job] = rows(db, Job, Job.kind == CHECK_SCHEDULE.kind)
    assert job.status == JobStatus.DONE
    assert f"the sending domain {NORTH} could not be read" in caplog.text


def test_the_deployments_domain_that_dns_does_not_answer_retries_the_check(db, frozen_clock):
    seed(db)
    _store(db, "north", "orders@north.example")

    _check_hourly(db, {DEPLOYMENT: DnsUnavailable("DNS did not answer"), NORTH: _reading(NORTH)})

    [job] = rows(db, Job, Job.kind == CHECK_SCHEDULE.kind)
    assert (job.status, job.attempts, job.last_error) == (
        JobStatus.PENDING,
        1,
        "DNS did not answer",
    )
    assert [row.domain for row in rows(db, SendingDomainCheck, order_by=lambda m: m.domain)] == [
        NORTH
    ]


@pytest.mark.parametrize(
    ("address", "selector", "reason"),
    [
        pytest.param("orders", "", "enter the address to send from", id="no_domain"),
        pytest.param("orders@localhost", "", "enter the address to send from", id="one_label"),
        pytest.param("a b@shop.example", "", "enter the address to send from", id="space"),
        pytest.param("o@-shop.example", "", "enter the address to send from", id="bad_label"),
        pytest.param("o@shop.example", "s1._domainkey.x;", "the DKIM selector", id="selector"),
    ],
)
def test_a_malformed_address_or_selector_is_refused_with_the_reason(address, selector, reason):
    with pytest.raises(ValueError, match=reason):
        email_sender.checked(address, selector, token=None)


def test_a_store_keeps_its_token_when_it_changes_the_address():
    first = email_sender.checked("Orders@North.Example", "", token=None)
    again = email_sender.checked("news@north.example", "k2", token=first.token)
    assert (first.address, first.domain, first.dkim_selector) == (
        "Orders@north.example",
        NORTH,
        None,
    )
    assert (again.token, again.dkim_selector) == (first.token, "k2")
    assert len(first.token) >= 24


def test_a_domain_two_stores_name_is_read_with_the_selector_of_the_one_that_proved_it(db):
    """A store naming another's domain, with a selector it made up and created first,
    would otherwise have every hourly reading of that domain fail its DKIM check, and the
    owner's email leave its own address for good."""
    seed(db)
    with db.transaction() as session:
        squatter = create_workspace(session, slug="squat", name="Squat", shopify_secret=SECRET)
        claim = email_sender.checked("x@north.example", "bogus", token=None)
        squatter.settings = {email_sender.SETTING: claim.as_settings()}
    _, token = _store(db, "north", "orders@north.example")
    with db.transaction() as session:
        unproven = email_sender.domains_to_read(session)
    _read(db, _reading(NORTH, tokens=(token,)))
    with db.transaction() as session:
        proven = email_sender.domains_to_read(session)

    assert unproven == {NORTH: "bogus"}
    assert proven == {NORTH: "s1"}
