"""Quiet hours (RELIABILITY S8, J4): a marketing text due in the customer's night waits for
their morning, in their own zone, across daylight-saving changes; order updates do not."""

from __future__ import annotations

import zoneinfo
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from parley.channels.base import ChannelKind
from parley.clock import zone_of
from parley.customers import service as customers
from parley.customers.identity import timezone_for_phone, timezones_for_phone
from parley.customers.models import Customer, CustomerIdentity
from parley.demo.simulate import order_lifecycle
from parley.jobs.models import Job, JobStatus
from parley.journeys.engine import ADVANCE
from parley.messaging.models import Message
from parley.messaging.quiet_hours import NoSharedWindow, QuietHours, WiderThanAllowed
from parley.workspaces.models import Workspace
from support import (
    SECRET,
    deliveries,
    drain,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    shopper,
    to_lane,
)

NEW_YORK = ZoneInfo("America/New_York")
US = QuietHours()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        ("2026-06-10T12:00:00-04:00", None),  # midday: allowed
        ("2026-06-10T08:00:00-04:00", None),  # the first allowed minute
        ("2026-06-10T07:59:59-04:00", "2026-06-10T08:00:00-04:00"),
        ("2026-06-10T21:00:00-04:00", "2026-06-11T08:00:00-04:00"),
        ("2026-06-10T23:30:00-04:00", "2026-06-11T08:00:00-04:00"),
        # The night clocks spring forward (8 March 2026, 2:00 -> 3:00): 8:00 is EDT.
        ("2026-03-08T01:30:00-05:00", "2026-03-08T08:00:00-04:00"),
        # The night they fall back (1 November 2026, 2:00 -> 1:00): 8:00 is EST.
        ("2026-11-01T01:30:00-04:00", "2026-11-01T08:00:00-05:00"),
    ],
)
def test_the_window_opens_at_eight_in_the_customers_own_zone(now, opens):
    assert US.next_opening(at(now), NEW_YORK) == (at(opens) if opens else None)


def test_a_store_that_sends_nothing_on_sundays_waits_for_monday():
    no_sundays = QuietHours(opens=8, closes=21, sundays=False)
    paris = ZoneInfo("Europe/Paris")
    saturday_night = at("2026-06-13T21:30:00+02:00")
    assert no_sundays.next_opening(saturday_night, paris) == at("2026-06-15T08:00:00+02:00")
    assert no_sundays.next_opening(at("2026-06-14T12:00:00+02:00"), paris) == at(
        "2026-06-15T08:00:00+02:00"
    )
    assert no_sundays.next_opening(at("2026-06-13T20:59:00+02:00"), paris) is None


def test_a_store_that_sends_nothing_on_public_holidays_waits_for_the_next_working_day():
    no_holidays = QuietHours(holidays=False)
    paris = ZoneInfo("Europe/Paris")
    bastille_day = at("2026-07-14T10:00:00+02:00")  # a Tuesday
    assert no_holidays.next_opening(bastille_day, paris, "FR") == at("2026-07-15T08:00:00+02:00")
    # The holidays are those of the number's country, and a number of none has none
    assert no_holidays.next_opening(bastille_day, paris, "US") is None
    assert no_holidays.next_opening(bastille_day, paris, None) is None
    assert US.next_opening(bastille_day, paris, "FR") is None


def test_holidays_and_sundays_in_a_row_are_all_skipped():
    # Christmas on Friday, Boxing Day on Saturday (its bank holiday moved to Monday 28th),
    # and the Sunday between: a London store that sends neither waits until Tuesday
    neither = QuietHours(sundays=False, holidays=False)
    london = ZoneInfo("Europe/London")
    assert neither.next_opening(at("2026-12-24T21:30:00+00:00"), london, "GB") == at(
        "2026-12-29T08:00:00+00:00"
    )


def test_a_window_saved_before_holidays_could_be_chosen_still_sends_on_them():
    stored = {"quiet_hours": {"opens": 9, "closes": 20, "sundays": False}}
    assert QuietHours.of(stored) == QuietHours(opens=9, closes=20, sundays=False, holidays=True)
    assert QuietHours.of({"quiet_hours": QuietHours(holidays=False).as_settings()}) == (
        QuietHours(holidays=False)
    )


def test_a_window_that_does_not_open_before_it_closes_is_refused():
    for opens, closes in ((21, 8), (9, 9), (-1, 20), (8, 25)):
        with pytest.raises(ValueError, match="must open before it closes"):
            QuietHours(opens=opens, closes=closes)


@pytest.mark.parametrize(
    ("opens", "closes"),
    [(0, 24), (7, 21), (8, 22), (6, 9)],
    ids=["all_day_case", "early_case", "late_case", "morning_case"],
)
def test_a_window_wider_than_eight_to_nine_pm_is_refused(opens, closes):
    """S8: 8:00 to 21:00 at the customer's location is the outer limit."""
    with pytest.raises(WiderThanAllowed, match="only between 08:00 and 21:00"):
        QuietHours(opens=opens, closes=closes)


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ({"opens": 0, "closes": 24, "sundays": True}, QuietHours(8, 21, sundays=True)),
        ({"opens": 6, "closes": 20, "sundays": False}, QuietHours(8, 20, sundays=False)),
        ({"opens": 9, "closes": 23}, QuietHours(9, 21)),
        ({"opens": 21, "closes": 24}, QuietHours(8, 21)),
        ({"opens": 9, "closes": 20}, QuietHours(9, 20)),
        (None, QuietHours(8, 21)),
    ],
    ids=["all_day_case", "early_case", "late_case", "nothing_legal_case", "narrow_case", "unset"],
)
def test_a_window_saved_wider_before_is_read_narrowed_to_eight_to_nine_pm(stored, read):
    assert QuietHours.of({"quiet_hours": stored}) == read


def test_the_zone_is_the_customers_then_the_stores_then_utc():
    assert zone_of("Asia/Tokyo", "Europe/London").key == "Asia/Tokyo"
    assert zone_of(None, "Europe/London").key == "Europe/London"
    assert zone_of("Not/AZone", None).key == "UTC"


@pytest.mark.parametrize("folder", ["US", "America", "Europe", "Etc"])
def test_a_folder_of_the_zone_database_given_as_a_zone_falls_back_like_an_unknown_name(folder):
    """A platform or the API may send "US" or "America" as a customer's zone: a folder of
    the zone database, which ``ZoneInfo`` opens and fails on with ``IsADirectoryError``."""
    assert zone_of(folder, "Europe/London").key == "Europe/London"
    assert zone_of(folder).key == "UTC"


BOISE, LOS_ANGELES = ZoneInfo("America/Boise"), ZoneInfo("America/Los_Angeles")
IDAHO = "+12085550100"
"""A number whose area code (208, Idaho) spans Mountain and Pacific time."""


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        # 8:30 in Boise is 7:30 in Los Angeles: wait for 8:00 there.
        ("2026-06-10T08:30:00-06:00", "2026-06-10T08:00:00-07:00"),
        ("2026-06-10T09:00:00-06:00", None),
        # 20:30 in Boise is 19:30 in Los Angeles: open in both.
        ("2026-06-10T20:30:00-06:00", None),
        # 21:10 in Boise is closed there: the next morning, when Los Angeles opens too.
        ("2026-06-10T21:10:00-06:00", "2026-06-11T08:00:00-07:00"),
    ],
)
def test_a_number_spanning_two_zones_waits_until_the_window_is_open_in_both(now, opens):
    assert US.next_opening_everywhere(at(now), [BOISE, LOS_ANGELES]) == (
        at(opens) if opens else None
    )


def test_zones_that_never_share_an_open_hour_are_said_to():
    narrow = QuietHours(opens=9, closes=10)

    with pytest.raises(NoSharedWindow, match="America/Boise, Asia/Tokyo"):
        narrow.next_opening_everywhere(
            at("2026-06-10T08:00:00-06:00"), [BOISE, ZoneInfo("Asia/Tokyo")]
        )


def test_a_numbers_zones_are_every_zone_of_its_area():
    assert timezones_for_phone(IDAHO) == ("America/Boise", "America/Los_Angeles")
    assert timezone_for_phone(IDAHO) is None
    assert timezones_for_phone("+12025550143") == ("America/New_York",)
    assert timezones_for_phone("not a number") == ()
    assert timezones_for_phone(None) == ()


ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})
NEIGHBOURS = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Boise",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Europe/London",
]
WINDOWS = st.tuples(st.integers(8, 20), st.integers(9, 21)).filter(lambda w: w[0] < w[1])


@settings(max_examples=300, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2035, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    zone=st.sampled_from(ZONES),
    window=WINDOWS,
    sundays=st.booleans(),
)
def test_a_deferred_text_lands_at_the_first_allowed_moment_whatever_the_zone_and_date(
    instant, zone, window, sundays
):
    hours = QuietHours(opens=window[0], closes=window[1], sundays=sundays)
    place = ZoneInfo(zone)
    opens = hours.next_opening(instant, place)
    if hours.allows(instant, place):
        assert opens is None
        return
    assert opens is not None
    assert instant < opens <= instant + timedelta(days=8)
    local = opens.astimezone(place)
    assert hours.opens <= local.hour < hours.closes
    assert hours.allows(opens, place)
    assert not hours.allows(opens - timedelta(seconds=1), place)
    # Nothing earlier was allowed: every quarter hour between (zones differ from UTC by
    # whole quarter hours) is still quiet.
    step = instant.replace(minute=instant.minute - instant.minute % 15, second=0, microsecond=0)
    while (step := step + timedelta(minutes=15)) < opens:
        assert not hours.allows(step, place)


@settings(max_examples=150, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2035, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    zones=st.lists(st.sampled_from(NEIGHBOURS), min_size=1, max_size=3, unique=True),
    window=WINDOWS,
    sundays=st.booleans(),
)
def test_a_text_to_several_possible_zones_lands_at_the_first_moment_all_allow(
    instant, zones, window, sundays
):
    hours = QuietHours(opens=window[0], closes=window[1], sundays=sundays)
    places = [ZoneInfo(zone) for zone in zones]
    try:
        opens = hours.next_opening_everywhere(instant, places)
    except NoSharedWindow:
        opens = False
    step = instant.replace(minute=instant.minute - instant.minute % 15, second=0, microsecond=0)
    if opens is False:
        # No quarter hour of the next week is open everywhere.
        end = instant + timedelta(days=8)
        while (step := step + timedelta(minutes=15)) < end:
            assert not all(hours.allows(step, place) for place in places)
        return
    if all(hours.allows(instant, place) for place in places):
        assert opens is None
        return
    assert opens is not None
    assert all(hours.allows(opens, place) for place in places)
    while (step := step + timedelta(minutes=15)) < opens:
        assert not all(hours.allows(step, place) for place in places)


# --- through the journey engine ----------------------------------------------------------


@pytest.fixture
def grace_takes_marketing_texts(db):
    """Grace (New York) agreed to marketing by SMS; the dispatch journey is a promotion."""
    workspace_id = seed(db)
    with db.transaction() as session:
        grace = session.scalar(select(Customer.id).where(Customer.email == "grace@example.com"))
        assert grace is not None
        customers.record_consent(
            session,
            workspace_id=workspace_id,
            customer_id=grace,
            channel="sms",
            purpose="marketing",
            is_granted=True,
            source="checkout",
        )
    return workspace_id


def test_a_marketing_text_due_at_night_waits_for_the_customers_morning(
    db, frozen_clock, grace_takes_marketing_texts
):
    to_lane(db, "dispatch", "marketing", workspace_id=grace_takes_marketing_texts)
    frozen_clock.advance(at("2026-03-03T23:10:00-05:00") - frozen_clock())
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    post(db, dispatched)
    adapters = recording_adapters()
    drain(make_worker(db, adapters))

    assert adapters[ChannelKind.SMS].sent == []
    assert rows(db, Message, Message.message_type == "dispatch") == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING, Job.kind == ADVANCE)
    assert waiting.due_at == at("2026-03-04T08:00:00-05:00")
    assert waiting.attempts == 0

    frozen_clock.advance(at("2026-03-04T08:00:00-05:00") - frozen_clock())
    drain(make_worker(db, adapters))
    [sms] = adapters[ChannelKind.SMS].sent
    assert sms.to == "+12025550143"
    [message] = rows(db, Message, Message.message_type == "dispatch")
    assert (message.channel, message.purpose, message.created_at) == (
        "sms",
        "marketing",
        at("2026-03-04T08:00:00-05:00"),
    )


def test_an_order_update_at_night_goes_at_once(db, frozen_clock, grace_takes_marketing_texts):
    frozen_clock.advance(at("2026-03-03T23:10:00-05:00") - frozen_clock())
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    post(db, dispatched)
    adapters = recording_adapters()
    drain(make_worker(db, adapters))
    [sms] = adapters[ChannelKind.SMS].sent
    assert sms.to == "+12025550143"


def _store_window(db, workspace_id: int, quiet_hours: dict) -> None:
    """The dispatch journey a promotion, and the store's quiet hours as saved."""
    to_lane(db, "dispatch", "marketing", workspace_id=workspace_id)
    with db.transaction() as session:
        store = session.get_one(Workspace, workspace_id)
        store.settings = {**store.settings, "quiet_hours": quiet_hours}


def _grace_ships_at(db, frozen_clock, when: str):
    """Grace's order is placed and shipped at ``when``; the adapters the worker used."""
    frozen_clock.advance(at(when) - frozen_clock())
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    post(db, dispatched)
    adapters = recording_adapters()
    drain(make_worker(db, adapters))
    return adapters


def test_the_stores_own_window_applies(db, frozen_clock, grace_takes_marketing_texts):
    """At 8:30 the law's window is open, but this store's opens at 10:00."""
    _store_window(db, grace_takes_marketing_texts, {"opens": 10, "closes": 18})
    adapters = _grace_ships_at(db, frozen_clock, "2026-03-04T08:30:00-05:00")
    assert adapters[ChannelKind.SMS].sent == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING, Job.kind == ADVANCE)
    assert waiting.due_at == at("2026-03-04T10:00:00-05:00")

    frozen_clock.advance(at("2026-03-04T10:00:00-05:00") - frozen_clock())
    drain(make_worker(db, adapters))
    assert len(adapters[ChannelKind.SMS].sent) == 1


def test_a_marketing_text_due_on_a_public_holiday_waits_for_the_next_day(
    db, frozen_clock, grace_takes_marketing_texts
):
    # Given a store that sends no marketing texts on public holidays, and Grace's US number
    _store_window(db, grace_takes_marketing_texts, {"holidays": False})

    # When her order ships on Thanksgiving morning
    adapters = _grace_ships_at(db, frozen_clock, "2026-11-26T10:00:00-05:00")

    # Then the promotion waits for the Friday's opening, and goes then
    assert adapters[ChannelKind.SMS].sent == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING, Job.kind == ADVANCE)
    assert waiting.due_at == at("2026-11-27T08:00:00-05:00")
    frozen_clock.advance(at("2026-11-27T08:00:00-05:00") - frozen_clock())
    drain(make_worker(db, adapters))
    [sms] = adapters[ChannelKind.SMS].sent
    assert sms.to == "+12025550143"


def test_a_window_saved_wider_than_the_law_keeps_a_text_for_the_morning(
    db, frozen_clock, grace_takes_marketing_texts
):
    """A store that saved 0:00 to 24:00 before the limit: its text at 23:10 still waits
    for 8:00 in the customer's zone."""
    _store_window(db, grace_takes_marketing_texts, {"opens": 0, "closes": 24})
    adapters = _grace_ships_at(db, frozen_clock, "2026-03-03T23:10:00-05:00")

    assert adapters[ChannelKind.SMS].sent == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING, Job.kind == ADVANCE)
    assert (waiting.due_at, waiting.waiting_for) == (
        at("2026-03-04T08:00:00-05:00"),
        "quiet_hours",
    )


def test_a_marketing_text_to_a_number_spanning_zones_waits_for_the_later_morning(
    db, frozen_clock, grace_takes_marketing_texts
):
    """Grace's number is Idaho's (Mountain and Pacific time) and her zone is unknown: at
    8:30 in Boise it is 7:30 where she may be, so her text waits for 8:00 Pacific."""
    with db.transaction() as session:
        grace = session.scalar(select(Customer).where(Customer.email == "grace@example.com"))
        grace.timezone = None
        session.execute(
            update(CustomerIdentity)
            .where(CustomerIdentity.customer_id == grace.id, CustomerIdentity.kind == "phone")
            .values(value=IDAHO)
        )
    to_lane(db, "dispatch", "marketing", workspace_id=grace_takes_marketing_texts)
    frozen_clock.advance(at("2026-03-03T08:30:00-07:00") - frozen_clock())
    placed, dispatched, *_ = order_lifecycle(
        secret=SECRET,
        order_id=501,
        number=1501,
        shopper=replace(shopper("Grace"), phone=IDAHO),
        start=frozen_clock(),
    )
    post(db, placed)
    post(db, dispatched)
    adapters = recording_adapters()
    drain(make_worker(db, adapters))

    assert adapters[ChannelKind.SMS].sent == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING, Job.kind == ADVANCE)
    assert waiting.due_at == at("2026-03-03T08:00:00-08:00")
    assert waiting.waiting_for == "quiet_hours"

    frozen_clock.advance(at("2026-03-03T08:00:00-08:00") - frozen_clock())
    drain(make_worker(db, adapters))
    [sms] = adapters[ChannelKind.SMS].sent
    assert sms.to == IDAHO
