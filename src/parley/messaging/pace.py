"""Each sender's pace: no more sends than its provider takes, the rest kept waiting as jobs.

A provider takes so many messages a second from one sender: a WhatsApp business number 80
by default (1,000 once Meta upgrades it), a US long code one SMS segment. Past that it
refuses (WhatsApp's 130429) or queues the excess itself, out of parley's sight and order
(Twilio holds a few hours' worth, then fails the rest). So a send is granted its sender's
room the moment it would be recorded ``sending``; a send that finds none is not made, and
its job waits in the job table, durable like any other, for the time the sender will have
room.

The allowance is the generic cell rate algorithm (GCRA): sends granted so far, laid end
to end at the sender's rate, fill the time up to ``spent_until``; a send fits while that
stays within one burst of now. A sender's row is read ``FOR UPDATE`` and written back in
the transaction that records the sends, so every worker on every machine draws from one
allowance, and a send rolled back gives its room back with it.

A send that finds no room is *booked*: given the next free time after the sends already
waiting in its lane, so a backlog of 100,000 is spread over the times the sender can
take it and each job is prepared again once, not at every turn. Bookings are a schedule,
not a claim on the room: when a booked send comes back it asks again, and order updates
are granted before marketing in every batch, so a broadcast's bookings never hold an
order update back. A marketing send that loses its time to one is booked again after
its lane.

A booking holds its place only while its send may still use it. One booked past the time
its message is worth sending (its expiry) is given straight back (:func:`unbook`): it
would expire at its time, and its place would hold every later booking back behind a
send that never comes. Sends whose journey the store switched off are all taken out of
the schedule at once when the first of them comes back (:func:`drop_bookings`, then
booked again, those still going): otherwise each would hold its place until its time,
and the store's next marketing, booked behind hours of them, would expire unsent.

A store may also set its own marketing rate (:mod:`parley.messaging.marketing_rate`),
paced here the same way on a row of its own and taken before the sender's.

Written here rather than with a rate-limiting library: the ones on PyPI keep their
counters in memory, Redis or a store of their own, outside the transaction that records
the send, so a rolled-back send would keep its room and a crash between the two would
lose or double it; the algorithm itself is the few lines of :func:`pace`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind, SendingAccount
from parley.db.base import table_of
from parley.db.scoped import one_of_parameter
from parley.db.upsert import insert_on, per_dialect
from parley.jobs.worker import Later
from parley.messaging.models import SenderPace
from parley.messaging.types import Purpose, WaitingFor

PACES = table_of(SenderPace)


@dataclass(frozen=True)
class Allowance:
    """What a provider takes from one sender: ``per_second`` units (messages, or SMS
    segments), up to ``burst`` of them at once from a rested sender."""

    per_second: float
    burst: float = 1.0

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ValueError(f"a sender's rate must be above 0, not {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"a sender's burst must be at least 1, not {self.burst}")

    @property
    def interval(self) -> timedelta:
        """The time one unit takes at this rate, rounded up to the microsecond: a sender
        is never paced faster than it allows (a third of a second rounded down would give
        a thousandth of a send too many every few minutes)."""
        return timedelta(microseconds=math.ceil(1_000_000 / self.per_second))

    @property
    def tolerance(self) -> timedelta:
        """How far ahead of now the spent allowance may run: one burst."""
        return self.interval * self.burst


def one_unit(text: str) -> int:
    """A channel that counts messages: every message costs one."""
    return 1


@dataclass(frozen=True)
class Sender:
    """One paced sender: its key (``whatsapp:<phone_number_id>``), what its provider
    allows, and what a message costs against that (SMS: its segments). A store's own
    marketing rate is paced the same way (:mod:`parley.messaging.marketing_rate`), with
    its own ``waiting_for`` and reason."""

    key: str
    allowance: Allowance
    unit: str = "message"
    cost: Callable[[str], int] = one_unit
    waiting_for: WaitingFor = WaitingFor.SENDER_PACE
    reason: str = ""
    """Why a send it has no room for waits; by default its provider's pace."""

    def describe(self) -> str:
        rate = f"{self.allowance.per_second:g}"
        return f"{self.key} takes {rate} {self.unit}{'' if rate == '1' else 's'} a second"

    @property
    def waiting(self) -> str:
        return self.reason or f"waiting for the sender's pace: {self.describe()}"


@dataclass
class Ledger:
    """One sender's row, as :func:`pace` reads and moves it."""

    spent_until: datetime
    booked_until: dict[Purpose, datetime]


@dataclass(frozen=True)
class Want:
    """A send about to be recorded: the channel it goes on, its purpose, its text."""

    channel: str
    purpose: str
    text: str = ""
    store: Sender | None = None
    """The store's own pace for it (a marketing rate), taken before its sender's."""
    account: str | None = None
    """The address of the store's own account it goes from (its number); None: the
    deployment's sender on its channel."""


@dataclass(frozen=True)
class Slot:
    """The place a waiting send was booked: from ``start`` to ``end`` in ``lane`` of the
    row of ``sender`` (empty until the pacer names the row)."""

    lane: Purpose
    start: datetime
    end: datetime
    sender: str = ""


@dataclass(frozen=True)
class Booking(Later):
    """A send's wait for the time its sender booked it, with the place it holds."""

    slot: Slot | None = None


def pace(
    ledger: Ledger,
    wants: Sequence[tuple[Purpose, int]],
    allowance: Allowance,
    *,
    now: datetime,
) -> list[datetime | None]:
    """Grant or book each ``(purpose, cost)`` of one sender's batch; moves ``ledger``.

    For each want, None when it may go now, or when to ask again (:func:`book`).
    """
    return [
        None if booked is None else booked[0] for booked in book(ledger, wants, allowance, now=now)
    ]


def book(
    ledger: Ledger,
    wants: Sequence[tuple[Purpose, int]],
    allowance: Allowance,
    *,
    now: datetime,
) -> list[tuple[datetime, Slot] | None]:
    """:func:`pace`, with the place each waiting want was booked.

    For each want, None when it may go now, or when to ask again and its slot.
    Transactional wants are served first, each lane in the order given; once one finds
    no room, every later one waits too, so a small send never overtakes a large one it
    queued behind. A waiting want is booked after its lane's bookings, and a marketing
    one after the order updates' too. A send costing more than a whole burst goes when
    the sender is rested, then the sender rests for its cost.
    """
    interval, tolerance = allowance.interval, allowance.tolerance
    order = sorted(range(len(wants)), key=lambda i: wants[i][0] == Purpose.MARKETING)
    end = max(ledger.spent_until, now)
    waits: list[tuple[datetime, Slot] | None] = [None] * len(wants)
    full = False
    for i in order:
        purpose, cost = wants[i]
        need = interval * cost
        if not full and (end + need <= now + tolerance or end <= now):
            end += need
            continue
        full = True
        if purpose == Purpose.MARKETING:
            # Behind the order updates booked so far, too: they go first.
            lane = Purpose.MARKETING
            start = max(ledger.booked_until[lane], ledger.booked_until[Purpose.TRANSACTIONAL], end)
        else:
            lane = Purpose.TRANSACTIONAL
            start = max(ledger.booked_until[lane], end)
        ledger.booked_until[lane] = start + need
        # It fits once the sends before it have gone and it is within a burst of its slot
        # (or, larger than a burst, once the sender has rested).
        until = max(now, start + min(need - tolerance, timedelta(0)))
        waits[i] = (until, Slot(lane, start, start + need))
    ledger.spent_until = end
    return waits


@dataclass
class Pacer:
    """The deployment's paced senders by channel; a channel not listed is not paced. A
    store's own account on a channel is paced as the deployment's sender there, on a row
    of its own (``whatsapp:<its phone_number_id>``): a number's allowance is the number's,
    whoever it belongs to."""

    senders: Mapping[ChannelKind, Sender] = field(default_factory=dict)

    def sender_for(self, want: Want) -> Sender | None:
        """The sender ``want`` is paced by, if its channel is paced."""
        sender = self.senders.get(ChannelKind(want.channel))
        if sender is None or want.account is None:
            return sender
        return replace(sender, key=f"{want.channel}:{want.account}")

    def keys_of_store(self, accounts: Mapping[ChannelKind, SendingAccount]) -> list[str]:
        """The rows a store's sends are paced on, one per paced channel: its own account's
        where it sends from one (``accounts``, by channel), else the deployment's."""
        keys = []
        for channel in self.senders:
            account = accounts.get(channel)
            own = account.address if account is not None and not account.is_address_only else None
            sender = self.sender_for(Want(str(channel), Purpose.MARKETING, account=own))
            assert sender is not None
            keys.append(sender.key)
        return keys

    def take(self, session: Session, wants: Sequence[Want], *, now: datetime) -> list[Later | None]:
        """For each want, in the transaction that records the sends: None when its room
        is taken and it may go, or when to try it again.

        A want's store pace is taken first, so a send the store holds back takes no room
        from the sender every store shares. One the store lets through but its sender
        then holds has spent the store's room: the store's marketing goes a little slower
        than its rate, never faster.
        """
        results: list[Later | None] = [None] * len(wants)
        stores = {i: want.store for i, want in enumerate(wants) if want.store is not None}
        senders = {
            i: sender
            for i, want in enumerate(wants)
            if (sender := self.sender_for(want)) is not None
        }
        if not stores and not senders:
            return results
        keys = sorted({sender.key for sender in (*stores.values(), *senders.values())})
        ledgers = _lock(session, keys, now=now)
        _grant(ledgers, stores, wants, results, now=now)
        _grant(
            ledgers,
            {i: s for i, s in senders.items() if results[i] is None},
            wants,
            results,
            now=now,
        )
        session.connection().execute(
            _write(session),
            [
                {
                    "key": key,
                    "spent": ledger.spent_until,
                    "transactional": ledger.booked_until[Purpose.TRANSACTIONAL],
                    "marketing": ledger.booked_until[Purpose.MARKETING],
                    "now": now,
                }
                for key, ledger in ledgers.items()
            ],
        )
        return results


def _grant(
    ledgers: Mapping[str, Ledger],
    paced: Mapping[int, Sender],
    wants: Sequence[Want],
    results: list[Later | None],
    *,
    now: datetime,
) -> None:
    """Pace each of ``paced``'s wants (by index) against its sender's ledger, in the order
    given; a want with no room gets its :class:`Later` in ``results``."""
    by_key: dict[str, list[int]] = {}
    for index, sender in paced.items():
        by_key.setdefault(sender.key, []).append(index)
    for key, indexes in by_key.items():
        sender = paced[indexes[0]]
        waits = book(
            ledgers[key],
            [(Purpose(wants[i].purpose), sender.cost(wants[i].text)) for i in indexes],
            sender.allowance,
            now=now,
        )
        for index, booked in zip(indexes, waits, strict=True):
            if booked is not None:
                until, slot = booked
                results[index] = Booking(
                    until, sender.waiting, sender.waiting_for, replace(slot, sender=key)
                )


def unbook(session: Session, slots: Sequence[Slot]) -> None:
    """Give back the places of bookings their sends will not use, in the transaction that
    booked them (which holds their rows). A lane's bookings end where its last one does,
    so a place is given back when nothing was booked after it (the latest first: a run
    of useless places at the end of a batch all go back); one with a live booking after
    it holds its place until its time passes, as any past booking does."""
    for slot in sorted(slots, key=lambda slot: slot.end, reverse=True):
        column = _booked_column(slot.lane)
        session.connection().execute(
            update(PACES)
            .where(PACES.c.sender == slot.sender, column == slot.end)
            .values({column: slot.start})
        )


def drop_bookings(session: Session, keys: Sequence[str]) -> None:
    """Forget what these senders have booked, in both lanes, keeping what they have spent:
    their sends still go no faster than they allow. For bookings that turned out to be
    for sends that will not come (their journey was switched off); the sends still
    waiting are to be booked again (:func:`parley.jobs.queue.bring_forward`). One
    statement: a pacer holding the rows waits for it."""
    if keys:
        session.connection().execute(
            update(PACES)
            .where(PACES.c.sender.in_(keys))
            .values(
                transactional_booked_until=PACES.c.spent_until,
                marketing_booked_until=PACES.c.spent_until,
            )
        )


def _booked_column(lane: Purpose) -> Any:
    if lane == Purpose.MARKETING:
        return PACES.c.marketing_booked_until
    return PACES.c.transactional_booked_until


def rest(session: Session, key: str) -> None:
    """Forget what one sender has spent and booked: it starts rested, as when first seen.
    For a store's marketing rate the store changed, whose waiting sends are then booked
    again at the new rate."""
    session.connection().execute(delete(PACES).where(PACES.c.sender == key))


def _lock(session: Session, keys: list[str], *, now: datetime) -> dict[str, Ledger]:
    """The senders' rows, locked until the transaction ends (on SQLite its write lock
    does); a sender seen for the first time starts rested."""
    connection = session.connection()
    ledgers = _read(connection.execute(_select(session), {"keys": keys}))
    missing = [key for key in keys if key not in ledgers]
    if missing:
        connection.execute(
            _insert(session),
            [
                {
                    "sender": key,
                    "spent_until": now,
                    "transactional_booked_until": now,
                    "marketing_booked_until": now,
                    "updated_at": now,
                }
                for key in missing
            ],
        )
        ledgers.update(_read(connection.execute(_select(session), {"keys": missing})))
    return ledgers


def _read(rows: Any) -> dict[str, Ledger]:
    return {
        row.sender: Ledger(
            spent_until=row.spent_until,
            booked_until={
                Purpose.TRANSACTIONAL: row.transactional_booked_until,
                Purpose.MARKETING: row.marketing_booked_until,
            },
        )
        for row in rows
    }


@per_dialect
def _select(dialect: str) -> Any:
    return (
        select(
            PACES.c.sender,
            PACES.c.spent_until,
            PACES.c.transactional_booked_until,
            PACES.c.marketing_booked_until,
        )
        .where(one_of_parameter(dialect, PACES.c.sender, "keys"))
        .order_by(PACES.c.sender)
        .with_for_update()
    )


@per_dialect
def _insert(dialect: str) -> Any:
    """A sender's first row; another worker may write it first, and then its row stands."""
    return insert_on(dialect, PACES).on_conflict_do_nothing(index_elements=["sender"])


@per_dialect
def _write(dialect: str) -> Any:
    return (
        update(PACES)
        .where(PACES.c.sender == bindparam("key"))
        .values(
            spent_until=bindparam("spent"),
            transactional_booked_until=bindparam("transactional"),
            marketing_booked_until=bindparam("marketing"),
            updated_at=bindparam("now"),
        )
    )
