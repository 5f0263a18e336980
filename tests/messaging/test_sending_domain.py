"""Marketing email waits for a sending domain set up for bulk mail (RELIABILITY S12): the
hourly reading is kept, a promotion from a domain short of the rules is passed over with
the reason, and order updates go whatever DNS says."""

from __future__ import annotations

import logging
from datetime import timedelta

from parley.channels.base import ChannelKind
from parley.channels.email_smtp.domain import DnsUnavailable, SendingDomain
from parley.jobs.models import Job, JobStatus
from parley.messaging.models import Message, SendingDomainCheck
from parley.messaging.sending_domain import CHECK_KIND, CHECK_SCHEDULE
from parley.runtime import Runtime
from parley.settings import get_settings
from support import (
    deliveries,
    drain,
    make_worker,
    post,
    promotions_without_caps,
    recording_adapters,
    rows,
    run_domain_check,
    seed,
)

DOMAIN = "demo.parley.test"
KEY = "v=DKIM1; k=rsa; p=MIIBIjANBgkq"
READY = SendingDomain(DOMAIN, ("v=spf1 -all",), "parley", (KEY,), DOMAIN, ("v=DMARC1; p=none",))
NO_DMARC = SendingDomain(DOMAIN, ("v=spf1 -all",), "parley", (KEY,), "parley.test", ())
SHORT = "no DMARC record (v=DMARC1) at _dmarc.demo.parley.test or _dmarc.parley.test"


def _read(db, *answers: SendingDomain | Exception) -> None:
    """The hourly check's job runs once per answer, an hour apart, through a worker."""
    remaining = list(answers)

    async def check(domain: str, dkim_selector: str | None) -> SendingDomain:
        assert (domain, dkim_selector) == (DOMAIN, None)
        answer = remaining.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    run_domain_check(db, check, DOMAIN)


def _promote_to_ada(db, adapters, *, order_id: int = 9100) -> None:
    placed, *_ = deliveries("Ada", order_id=order_id, number=order_id + 10000)
    post(db, placed)
    drain(make_worker(db, adapters, sending_domain=DOMAIN))


def test_a_promotion_from_a_domain_without_dmarc_is_not_emailed_and_says_why(db, frozen_clock):
    seed(db)
    promotions_without_caps(db)
    _read(db, NO_DMARC)
    adapters = recording_adapters()

    _promote_to_ada(db, adapters)

    assert adapters[ChannelKind.EMAIL].sent == []
    [message] = rows(db, Message, Message.message_type == "order_confirmation")
    assert (message.status, message.channel) == ("skipped", None)
    assert message.status_reason == (
        f"no channel allowed: email: the sending domain {DOMAIN} is not set up for bulk "
        f"mail: {SHORT}"
    )


def test_once_the_domain_is_fixed_the_next_promotion_is_emailed(db, frozen_clock):
    seed(db)
    promotions_without_caps(db)
    _read(db, NO_DMARC)
    frozen_clock.advance(timedelta(hours=1))
    _read(db, READY)
    adapters = recording_adapters()

    _promote_to_ada(db, adapters)

    [sent] = adapters[ChannelKind.EMAIL].sent
    assert sent.to == "ada@example.com"
    [row] = rows(db, SendingDomainCheck, order_by=lambda m: m.domain)
    assert (row.domain, row.problems) == (DOMAIN, [])


def test_a_domain_never_read_holds_nothing_back(db, frozen_clock):
    seed(db)
    promotions_without_caps(db)
    adapters = recording_adapters()

    _promote_to_ada(db, adapters)

    assert len(adapters[ChannelKind.EMAIL].sent) == 1


def test_order_updates_are_emailed_whatever_the_domain_says(db, frozen_clock):
    seed(db)
    _read(db, NO_DMARC)
    adapters = recording_adapters()

    _promote_to_ada(db, adapters)  # the confirmation, as an order update

    assert len(adapters[ChannelKind.EMAIL].sent) == 1


def test_dns_that_does_not_answer_is_retried_and_the_last_reading_stands(db, frozen_clock):
    seed(db)
    _read(db, NO_DMARC)
    frozen_clock.advance(timedelta(hours=1))

    _read(db, DnsUnavailable("DNS did not answer for demo.parley.test: timed out"))

    [job] = rows(db, Job, Job.kind == CHECK_KIND, Job.status == JobStatus.PENDING)
    assert (job.attempts, job.last_error) == (
        1,
        "DNS did not answer for demo.parley.test: timed out",
    )
    [row] = rows(db, SendingDomainCheck, order_by=lambda m: m.domain)
    assert row.problems == [SHORT]


def test_a_change_in_the_domains_set_up_is_logged_once(db, frozen_clock, caplog):
    seed(db)
    caplog.set_level(logging.WARNING, logger="parley.messaging.sending_domain")

    _read(db, NO_DMARC)
    frozen_clock.advance(timedelta(hours=1))
    _read(db, NO_DMARC)
    frozen_clock.advance(timedelta(hours=1))
    _read(db, READY)

    assert [record.getMessage() for record in caplog.records] == [
        f"sending domain {DOMAIN}: {SHORT}: marketing email waits until this is fixed",
        f"sending domain {DOMAIN}: SPF, DKIM (parley) and DMARC (none) in place: "
        "marketing email goes again",
    ]


def test_the_check_is_scheduled_unless_it_is_turned_off(db):
    on = Runtime(settings=get_settings(database_url=db.url), db=db, adapters={})
    off = Runtime(
        settings=get_settings(database_url=db.url, email_domain_check=False), db=db, adapters={}
    )

    assert CHECK_SCHEDULE in on.schedules()
    assert CHECK_KIND in {task.kind for task in on.tasks()}
    assert CHECK_SCHEDULE not in off.schedules()
    assert CHECK_KIND not in {task.kind for task in off.tasks()}
