"""Which alerts fire for a backlog, and what they say: pure, no database or clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parley.alerts.rules import (
    DEAD_LETTER,
    NOTIFY_KIND,
    PRIVACY,
    REFUSED,
    Thresholds,
    duration,
    evaluate,
    late,
    names,
    resolution,
)
from parley.jobs.backlog import Backlog, LaneBacklog
from parley.jobs.models import Lane
from parley.messaging.senders import Refused
from parley.privacy.models import one_month_after
from parley.privacy.service import Waiting

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TRANSACTIONAL_LATE = late(Lane.TRANSACTIONAL)
DEFAULTS = Thresholds()


def backlog(
    *, waited: float = 0.0, due: int = 0, stores: int = 0, store=None, dead=None, lately=None
) -> Backlog:
    transactional = (
        LaneBacklog(
            due=due,
            stores=stores,
            oldest_due_at=NOW - timedelta(seconds=waited),
            longest_waiting_store=store,
        )
        if due
        else LaneBacklog()
    )
    return Backlog(
        at=NOW,
        lanes={Lane.TRANSACTIONAL: transactional, Lane.MARKETING: LaneBacklog()},
        dead_letter=dead or {},
        dead_lately=lately or {},
    )


def verdict(found: Backlog, *, firing=frozenset(), thresholds=DEFAULTS) -> dict:
    return evaluate(found, thresholds, firing=firing, store_names={7: "acme"})


def test_every_alert_is_named_and_none_fires_for_an_empty_backlog():
    assert names() == [
        "late:transactional",
        "late:marketing",
        "dead_letter",
        "privacy_requests",
        "refused_accounts",
    ]
    assert verdict(backlog()) == dict.fromkeys(names())


def test_a_lane_late_by_the_threshold_fires_saying_how_late_how_many_and_whose():
    found = verdict(backlog(waited=192, due=12_345, stores=2, store=7))

    assert found[TRANSACTIONAL_LATE] == (
        "Order updates are 3 min 12 s late: 12,345 jobs due now across 2 stores; the longest "
        "waiting is store 'acme'. Are the workers running and keeping up "
        "(`parley jobs backlog`)?"
    )
    assert found[late(Lane.MARKETING)] is None


def test_a_lane_just_under_the_threshold_does_not_fire():
    assert verdict(backlog(waited=119.9, due=3, stores=1, store=7))[TRANSACTIONAL_LATE] is None
    assert verdict(backlog(waited=120, due=3, stores=1, store=7))[TRANSACTIONAL_LATE]


def test_a_firing_lateness_alert_keeps_firing_until_the_lane_is_under_half_the_threshold():
    firing = {TRANSACTIONAL_LATE}
    assert verdict(backlog(waited=60, due=1, stores=1, store=7), firing=firing)[TRANSACTIONAL_LATE]
    assert (
        verdict(backlog(waited=59.9, due=1, stores=1, store=7), firing=firing)[TRANSACTIONAL_LATE]
        is None
    )


def test_the_deployment_s_own_late_jobs_are_named_as_such():
    found = verdict(backlog(waited=300, due=1, stores=0, store=None))

    assert found[TRANSACTIONAL_LATE] == (
        "Order updates are 5 min late: 1 job due now; the longest waiting is the "
        "deployment's own. Are the workers running and keeping up (`parley jobs backlog`)?"
    )


def test_jobs_reaching_the_dead_letter_lately_fire_and_dead_notifications_do_not():
    found = backlog(
        dead={"journeys.advance": 40, "messages.deliver": 2, NOTIFY_KIND: 1},
        lately={"journeys.advance": 3, NOTIFY_KIND: 1},
    )

    assert verdict(found)[DEAD_LETTER] == (
        "3 jobs reached the dead letter in the last 15 min (journeys.advance: 3); 43 in it "
        "now. `parley jobs dead` lists them with why, `parley jobs retry` re-drives them."
    )
    assert verdict(backlog(dead={NOTIFY_KIND: 1}, lately={NOTIFY_KIND: 1}))[DEAD_LETTER] is None


def test_a_threshold_of_zero_turns_its_alert_off():
    off = Thresholds(late_seconds=0, dead_letter_window=timedelta(0))
    found = backlog(waited=86_400, due=1, stores=1, store=7, dead={"x": 1}, lately={"x": 1})

    assert verdict(found, thresholds=off) == dict.fromkeys(names())


def test_negative_thresholds_are_refused():
    with pytest.raises(ValueError, match="cannot be negative"):
        Thresholds(late_seconds=-1)


def test_a_resolution_says_it_is_over_and_how_long_it_fired():
    found = backlog(waited=20, due=1, stores=1, store=7, dead={"x": 4})

    assert resolution(TRANSACTIONAL_LATE, found, fired_for=750) == (
        "Order updates are on time again: the oldest due job has waited 20 s (this alert "
        "fired for 12 min 30 s)."
    )
    assert resolution(DEAD_LETTER, found, fired_for=3600) == (
        "No job has reached the dead letter lately (this alert fired for 1 h); 4 in it now."
    )


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0 s"), (45.9, "45 s"), (60, "1 min"), (252, "4 min 12 s"), (11_100, "3 h 5 min")],
)
def test_durations_read_as_a_person_says_them(seconds, words):
    assert duration(seconds) == words


def test_late_privacy_requests_fire_naming_the_oldest_and_its_due_date():
    received = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    waiting = Waiting(
        count=3,
        oldest_id=7,
        oldest_kind="erasure",
        oldest_store="acme",
        oldest_received_at=received,
        oldest_due_at=one_month_after(received),
    )
    found = evaluate(backlog(), DEFAULTS, firing=frozenset(), store_names={}, waiting=waiting)

    assert found[PRIVACY] == (
        "3 privacy requests not carried out 25 days after receipt (the oldest, erasure "
        "request 7 of store 'acme', was received 2026-03-02 and is due by 2026-04-02); the "
        "store owes the answer within a month. Requests are done in seconds: see why in "
        "`parley jobs dead` (kind privacy.customer_request) and the store's Settings → "
        "Privacy requests."
    )
    off = Thresholds(privacy_after=timedelta(0))
    assert evaluate(backlog(), off, firing=frozenset(), store_names={}, waiting=waiting) == (
        dict.fromkeys(names())
    )


def test_a_store_account_its_provider_refuses_fires_naming_the_latest_and_what_to_do():
    refused = Refused(
        count=2,
        latest_store="north",
        latest_provider="whatsapp_cloud",
        latest_address="200000000000002",
        latest_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        latest_reason="WhatsApp rejected the message (HTTP 401, error 190): Invalid OAuth "
        "access token.",
    )

    found = evaluate(backlog(), DEFAULTS, firing=frozenset(), store_names={}, refused=refused)

    assert found[REFUSED] == (
        "2 store accounts refused by the provider (the latest, store 'north''s "
        "whatsapp_cloud 200000000000002 since 2026-03-02 09:30 UTC: WhatsApp rejected the "
        "message (HTTP 401, error 190): Invalid OAuth access token.). Their messages go on "
        "the next channel meanwhile; the store replaces the secrets on Settings → Channels, "
        "or fixes the account at the provider."
    )
    assert resolution(REFUSED, backlog(), fired_for=90) == (
        "Every store account sends again, or was replaced or paused (this alert fired for "
        "1 min 30 s)."
    )
