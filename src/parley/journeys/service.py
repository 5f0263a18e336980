"""Starting and ending journey runs as store events arrive; installing the built-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, event, or_, select, update
from sqlalchemy.orm import Session

from parley import events
from parley.clock import utc_now
from parley.db import Database
from parley.db.base import table_of
from parley.db.recent import Recent
from parley.db.scoped import one_of, one_of_parameter
from parley.db.upsert import insert_for, insert_on, per_dialect
from parley.errors import Invalid, NotFound, describe_problems
from parley.jobs import queue
from parley.journeys.definitions import (
    BUILT_IN_DEFINITIONS,
    JourneyDefinition,
    RunKey,
    check_edit,
)
from parley.journeys.models import Journey, JourneyRun, JourneyVersion, RunStatus

ADVANCE = "journeys.advance"
TRIGGERED_AT = "triggered_at"
"""Run context key: when the event that started the run happened (ISO). A delivery can
reach parley after a later one (a platform's retry), so an order placed after the
checkout began ends the checkout's run even when parley heard of it first."""
RUNS = table_of(JourneyRun)
# Parsed definitions by revision token: a revision's content never changes.
_DEFINITIONS: dict[str, JourneyDefinition] = {}
# ``session.info`` keys: each workspace's enabled journeys, read once per transaction;
# the workspaces whose journeys the session has changed.
_ENABLED_IN_SESSION = "journeys.enabled"
_CHANGED_IN_SESSION = "journeys.changed"
ENABLED_TTL_SECONDS = 1.0


def new_revision() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class EventFacts:
    """What a journey needs to know about an event to start or end runs."""

    type: events.EventType
    order_external_id: str | None
    fulfillment_external_id: str | None
    checkout_external_id: str | None
    customer_id: int | None
    occurred_at: datetime | None = None
    """When the event happened, by the platform: a run it starts counts its
    ``since_run_start`` exits from then (:data:`TRIGGERED_AT`)."""

    def subject(self, run_key: RunKey) -> str | None:
        return {
            RunKey.ORDER: self.order_external_id,
            RunKey.FULFILLMENT: self.fulfillment_external_id,
            RunKey.CHECKOUT: self.checkout_external_id,
            RunKey.CUSTOMER: str(self.customer_id) if self.customer_id else None,
        }[run_key]


def install_built_in_journeys(session: Session, *, workspace_id: int) -> None:
    """Give a workspace its own editable copy of every built-in journey (enabled)."""
    _forget_enabled(session, workspace_id=workspace_id)
    now = utc_now()
    rows = [
        {
            "workspace_id": workspace_id,
            "key": definition.key,
            "name": definition.name,
            "is_enabled": True,
            "definition": definition.dump(),
            "version": 1,
            "revision": new_revision(),
            "updated_at": now,
        }
        for definition in BUILT_IN_DEFINITIONS
    ]
    session.execute(
        insert_for(session, table_of(Journey)).on_conflict_do_nothing(
            index_elements=["workspace_id", "key"]
        ),
        rows,
    )
    kept = select(
        Journey.workspace_id,
        Journey.id,
        Journey.version,
        Journey.revision,
        Journey.definition,
        Journey.updated_at,
    ).where(Journey.workspace_id == workspace_id)
    session.execute(
        insert_for(session, table_of(JourneyVersion))
        .from_select(
            ["workspace_id", "journey_id", "version", "revision", "definition", "created_at"],
            kept,
        )
        .on_conflict_do_nothing(index_elements=["journey_id", "version"])
    )


def list_journeys(session: Session, *, workspace_id: int) -> list[Journey]:
    return list(
        session.scalars(
            select(Journey).where(Journey.workspace_id == workspace_id).order_by(Journey.id)
        )
    )


def update_journey(
    session: Session,
    *,
    workspace_id: int,
    key: str,
    definition: dict[str, Any] | None = None,
    is_enabled: bool | None = None,
) -> Journey:
    """Change a journey. A new definition is a new version: runs started from now on
    follow it, and runs in flight finish on the version they started on."""
    journey = session.scalar(
        select(Journey).where(Journey.workspace_id == workspace_id, Journey.key == key)
    )
    if journey is None:
        raise NotFound(f"journey {key!r} not found")
    _forget_enabled(session, workspace_id=workspace_id)
    if definition is not None:
        try:
            parsed = JourneyDefinition.parse(definition)
        except ValidationError as exc:
            raise Invalid(
                f"journey {key!r} is not valid: {describe_problems(exc.errors())}"
            ) from exc
        if parsed.key != key:
            raise Invalid("a journey's key cannot change")
        try:
            check_edit(parsed)
        except ValueError as exc:
            raise Invalid(f"journey {key!r} is not valid: {exc}") from exc
        journey.definition = parsed.dump()
        journey.name = parsed.name
        journey.version += 1
        journey.revision = new_revision()
    if is_enabled is not None:
        journey.is_enabled = is_enabled
    journey.updated_at = utc_now()
    if definition is not None:
        session.add(
            JourneyVersion(
                workspace_id=workspace_id,
                journey_id=journey.id,
                version=journey.version,
                revision=journey.revision,
                definition=journey.definition,
                created_at=journey.updated_at,
            )
        )
    # Written now, so that reads on the connection later in this transaction see it.
    session.flush()
    return journey


@dataclass(frozen=True)
class EnabledJourney:
    """What ``on_event`` needs of a journey; its definition comes from the parse cache."""

    id: int
    workspace_id: int
    version: int
    definition: JourneyDefinition


def enabled_journeys(session: Session, *, workspace_id: int) -> tuple[EnabledJourney, ...]:
    """The workspace's enabled journeys, parsing each definition once per version.

    Read once per transaction (a group-committed batch of one store's deliveries shares
    the read) and kept by the process for :data:`ENABLED_TTL_SECONDS` (see
    :func:`enabled_cache`). :func:`update_journey` and :func:`install_built_in_journeys`
    forget both, so a change made earlier in the same transaction, or committed earlier
    in the same process, is seen at once.
    """
    remembered: dict[int, tuple[EnabledJourney, ...]] = session.info.setdefault(
        _ENABLED_IN_SESSION, {}
    )
    found = remembered.get(workspace_id)
    if found is not None:
        return found
    database = Database.of(session)
    cache = None
    if database is not None and workspace_id not in session.info.get(_CHANGED_IN_SESSION, ()):
        cache = enabled_cache(database)
        kept = cache.fresh(workspace_id)
        found = kept.value if kept is not None else None
    if found is None:
        read_at = cache.clock() if cache is not None else 0.0
        found = _read_enabled(session, workspace_id=workspace_id)
        if cache is not None:
            cache.keep(workspace_id, found, read_at=read_at)
    remembered[workspace_id] = found
    return found


def enabled_cache(db: Database) -> Recent[int, tuple[EnabledJourney, ...]]:
    """This process's switched-on journeys by workspace, for ``db``.

    Every delivery needs them. Read once per transaction, they cost a delivery that
    arrives at a quiet moment (written alone, a transaction of its own) one statement of
    nine. Kept here, a change made in another process (a second ``serve``, a CLI) shows
    within :data:`ENABLED_TTL_SECONDS`; one made in this process shows at once. A run
    started in that time for a journey just switched off ends before its first send:
    every step re-checks that its journey is on (:func:`parley.journeys.engine.exit_reason`).
    """
    return db.shared("journeys.enabled", lambda: Recent(ttl=ENABLED_TTL_SECONDS))


def _read_enabled(session: Session, *, workspace_id: int) -> tuple[EnabledJourney, ...]:
    rows = session.connection().execute(_select_enabled(session), {"workspace_id": workspace_id})
    found = []
    for row in rows:
        definition = _DEFINITIONS.get(row.revision)
        if definition is None:
            stored = session.scalar(select(Journey.definition).where(Journey.id == row.id))
            assert stored is not None
            definition = _remember(row.revision, stored)
        found.append(EnabledJourney(row.id, workspace_id, row.version, definition))
    return tuple(found)


def _forget_enabled(session: Session, *, workspace_id: int) -> None:
    """This session reads the workspace's journeys afresh from now on and keeps them to
    itself; the process forgets them now and again once the change is committed."""
    session.info.get(_ENABLED_IN_SESSION, {}).pop(workspace_id, None)
    session.info.setdefault(_CHANGED_IN_SESSION, set()).add(workspace_id)
    database = Database.of(session)
    if database is not None:
        enabled_cache(database).forget(workspace_id)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Another transaction may have kept the old journeys between the change and its commit.
    changed = session.info.pop(_CHANGED_IN_SESSION, None)
    database = Database.of(session) if changed else None
    if database is not None:
        cache = enabled_cache(database)
        for workspace_id in changed:
            cache.forget(workspace_id)


@per_dialect
def _select_enabled(dialect: str) -> Any:
    return (
        select(Journey.id, Journey.version, Journey.revision)
        .where(Journey.workspace_id == bindparam("workspace_id"), Journey.is_enabled.is_(True))
        .order_by(Journey.id)
    )


def on_event(session: Session, *, workspace_id: int, facts: EventFacts, now: datetime) -> int:
    """End the runs this event exits, start the runs it triggers; return runs started."""
    journeys = enabled_journeys(session, workspace_id=workspace_id)
    _exit_runs(session, workspace_id=workspace_id, facts=facts, journeys=journeys, now=now)
    started = 0
    for journey in journeys:
        definition = journey.definition
        if definition.trigger.event != facts.type:
            continue
        subject = facts.subject(definition.run_key)
        if subject is None:
            continue
        run_id = _start_run(
            session,
            journey=journey,
            run_key=f"{definition.run_key}:{subject}",
            facts=facts,
            now=now,
        )
        if run_id is not None:
            queue.enqueue(
                session,
                kind=ADVANCE,
                payload={"run_id": run_id, "step": 0},
                workspace_id=workspace_id,
                due_at=now,
                idempotency_key=f"journey:{run_id}:0",
                lane=definition.lane,
                at_commit=True,
            )
            started += 1
    return started


def _start_run(
    session: Session, *, journey: EnabledJourney, run_key: str, facts: EventFacts, now: datetime
) -> int | None:
    """Insert the run unless one with this key exists (a retried webhook); its id if new."""
    return (
        session.connection()
        .execute(
            _insert_run(session),
            {
                "workspace_id": journey.workspace_id,
                "journey_id": journey.id,
                "run_key": run_key,
                "customer_id": facts.customer_id,
                "order_external_id": facts.order_external_id,
                "context": {
                    "order_external_id": facts.order_external_id,
                    "fulfillment_external_id": facts.fulfillment_external_id,
                    "checkout_external_id": facts.checkout_external_id,
                    "journey_version": journey.version,
                    TRIGGERED_AT: (facts.occurred_at or now).isoformat(),
                },
                "status": RunStatus.ACTIVE,
                "exit_reason": None,
                "ended_at": None,
                "started_at": now,
            },
        )
        .scalar()
    )


@per_dialect
def _insert_run(dialect: str) -> Any:
    return (
        insert_on(dialect, RUNS)
        .on_conflict_do_nothing(index_elements=["workspace_id", "journey_id", "run_key"])
        .returning(RUNS.c.id)
    )


def definition_of(journey: Journey) -> JourneyDefinition:
    """The parsed definition, parsed once per revision (every event needs it)."""
    definition = _DEFINITIONS.get(journey.revision)
    return definition or _remember(journey.revision, journey.definition)


def _started_on(run: JourneyRun) -> int | None:
    """The version of its journey a run started on (None for a run that did not say)."""
    version = (run.context or {}).get("journey_version")
    return int(version) if version is not None else None


def run_definitions(
    session: Session, runs: Iterable[tuple[JourneyRun, Journey]]
) -> dict[int, JourneyDefinition]:
    """The definition each run follows, by run id: the version it started on.

    Runs on the current version (nearly all) need no read; older versions are read in
    one query. A version edited away before versions were kept is gone: its runs follow
    the current definition.
    """
    found: dict[int, JourneyDefinition] = {}
    older: dict[tuple[int, int, int], list[int]] = {}
    current: dict[int, Journey] = {}
    for run, journey in runs:
        version = _started_on(run)
        if version is None or version == journey.version:
            found[run.id] = definition_of(journey)
        else:
            older.setdefault((journey.workspace_id, journey.id, version), []).append(run.id)
            current[run.id] = journey
    if not older:
        return found
    rows = session.execute(
        select(
            JourneyVersion.workspace_id,
            JourneyVersion.journey_id,
            JourneyVersion.version,
            JourneyVersion.revision,
            JourneyVersion.definition,
        ).where(
            or_(
                *(
                    and_(
                        JourneyVersion.workspace_id == workspace_id,
                        JourneyVersion.journey_id == journey_id,
                        JourneyVersion.version == version,
                    )
                    for workspace_id, journey_id, version in older
                )
            )
        )
    )
    for workspace_id, journey_id, version, revision, stored in rows:
        definition = _DEFINITIONS.get(revision) or _remember(revision, stored)
        for run_id in older.pop((workspace_id, journey_id, version)):
            found[run_id] = definition
    for run_ids in older.values():
        for run_id in run_ids:
            found[run_id] = definition_of(current[run_id])
    return found


def _remember(revision: str, stored: dict[str, Any]) -> JourneyDefinition:
    if len(_DEFINITIONS) > 10_000:
        _DEFINITIONS.clear()
    definition = _DEFINITIONS[revision] = JourneyDefinition.parse(stored)
    return definition


def triggered_at(run: JourneyRun) -> datetime:
    """When the event that started the run happened (when the run began, for a run that
    did not say): ``since_run_start`` exits count from then."""
    stamp = (run.context or {}).get(TRIGGERED_AT)
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else run.started_at


def _exit_runs(
    session: Session,
    *,
    workspace_id: int,
    facts: EventFacts,
    journeys: tuple[EnabledJourney, ...],
    now: datetime,
) -> None:
    for journey in journeys:
        for rule in journey.definition.exit:
            if rule.event != facts.type:
                continue
            if rule.match == "order":
                if facts.order_external_id is None:
                    continue
                scope = JourneyRun.order_external_id == facts.order_external_id
            else:
                if facts.customer_id is None:
                    continue
                scope = JourneyRun.customer_id == facts.customer_id
            active = and_(
                JourneyRun.workspace_id == workspace_id,
                JourneyRun.journey_id == journey.id,
                JourneyRun.status == RunStatus.ACTIVE,
                scope,
            )
            if rule.since_run_start and facts.occurred_at is not None:
                # An event that happened before a run's trigger (arriving late, or
                # imported), or the trigger itself, is not one this rule counts.
                later = [
                    run.id
                    for run in session.scalars(select(JourneyRun).where(active))
                    if triggered_at(run) < facts.occurred_at
                ]
                if not later:
                    continue
                active = and_(active, one_of(session, JourneyRun.id, later))
            session.execute(
                update(JourneyRun)
                .where(active)
                .values(status=RunStatus.EXITED, exit_reason=f"{facts.type}", ended_at=now)
            )


def end_run(
    session: Session, *, run_id: int, status: RunStatus, reason: str | None, now: datetime
) -> None:
    """Close a run if it is still active (a conditional update: concurrent exits agree)."""
    session.connection().execute(
        _end_run(session), {"run": run_id, "status": status, "reason": reason, "now": now}
    )


def end_runs(session: Session, *, run_ids: list[int], status: RunStatus, now: datetime) -> None:
    """Close several runs in one statement (those still active)."""
    if run_ids:
        session.connection().execute(
            _end_runs(session), {"runs": run_ids, "status": status, "reason": None, "now": now}
        )


@per_dialect
def _end_run(dialect: str) -> Any:
    return (
        update(RUNS)
        .where(RUNS.c.id == bindparam("run"), RUNS.c.status == RunStatus.ACTIVE)
        .values(
            status=bindparam("status"), exit_reason=bindparam("reason"), ended_at=bindparam("now")
        )
    )


@per_dialect
def _end_runs(dialect: str) -> Any:
    return (
        update(RUNS)
        .where(one_of_parameter(dialect, RUNS.c.id, "runs"), RUNS.c.status == RunStatus.ACTIVE)
        .values(
            status=bindparam("status"), exit_reason=bindparam("reason"), ended_at=bindparam("now")
        )
    )
