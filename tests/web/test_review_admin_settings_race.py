"""Two admins saving different store settings at once both keep their change: every save
rewrites the workspace's settings JSON, so one read before the other committed would put
the other's setting back as it was (PostgreSQL, read committed)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from parley.http.web.admin import store
from parley.workspaces.models import Workspace
from support import API_KEY, rows, until_waiting_for_a_lock
from web_support import login_as, seed_team, web_app

AUTH = {"Authorization": f"Bearer {API_KEY}"}

EMAIL_SENDER = {
    "address": "orders@juniper.example",
    "dkim_selector": "",
    "deployment_domain": "parley.example",
}


def _quiet_hours(session, login) -> None:
    store.update_quiet_hours(
        session, login=login, opens="9", closes="20", sundays=False, holidays=True, ip="1.1.1.1"
    )


def _caps(session, login) -> None:
    store.update_frequency_caps(
        session,
        login=login,
        hours={"email": "48", "sms": "72", "whatsapp": "24", "instagram": "24"},
        ip="1.1.1.1",
    )


def _general(session, login) -> None:
    store.update_general(
        session,
        login=login,
        name="Juniper & Pine",
        store_url="https://juniper.example",
        support_email="help@juniper.example",
        postal="1 Quay Road, Bristol",
        timezone="Europe/London",
        ip="1.1.1.1",
    )


def _policies(session, login) -> None:
    store.save_knowledge(
        session,
        login=login,
        sections=[store.Section("Returns", "Within 14 days.")],
        return_window_days="14",
        ip="1.1.1.1",
    )


def _pause(session, login) -> None:
    store.set_marketing_paused(session, login=login, paused=True, ip="1.1.1.1")


def _sender(session, login) -> None:
    store.set_email_sender(session, login=login, ip="1.1.1.1", **EMAIL_SENDER)


SAVES: dict[str, tuple[Callable[..., None], str, Callable[[Any], Any], Any]] = {
    "quiet_hours": (
        _quiet_hours,
        "quiet_hours",
        lambda saved: saved,
        {"opens": 9, "closes": 20, "sundays": False, "holidays": True},
    ),
    "frequency_caps": (
        _caps,
        "frequency_caps",
        lambda saved: saved,
        {"email": 48.0, "sms": 72.0, "whatsapp": 24.0, "instagram": 24.0},
    ),
    "general": (_general, "postal_address", lambda saved: saved, "1 Quay Road, Bristol"),
    "policies": (
        _policies,
        "knowledge",
        lambda saved: saved,
        [{"title": "Returns", "text": "Within 14 days."}],
    ),
    "marketing_pause": (_pause, "marketing_paused", lambda saved: saved is not None, True),
    "email_sender": (
        _sender,
        "email_sender",
        lambda saved: saved and saved["address"],
        "orders@juniper.example",
    ),
}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("frequency_caps", "quiet_hours"),
        ("quiet_hours", "general"),
        ("general", "policies"),
        ("policies", "marketing_pause"),
        ("marketing_pause", "email_sender"),
        ("email_sender", "frequency_caps"),
    ],
)
def test_two_settings_saved_at_once_are_both_kept(db, first, second):
    team = seed_team(db)
    with db.transaction() as session:
        login = login_as(session, team.workspace_id, team.admin_id)
    save_first, save_second = SAVES[first][0], SAVES[second][0]
    failed: list[Any] = []

    def second_admin_saves() -> None:
        try:
            with db.transaction() as session:
                save_second(session, login)
        except Exception as exc:  # noqa: BLE001  (any failure is what is checked)
            failed.append(exc)

    saving = threading.Thread(target=second_admin_saves)
    # The first admin's save is written, not yet committed, when the second one's starts
    with db.transaction() as session:
        save_first(session, login)
        session.flush()
        saving.start()
        if db.engine.dialect.name == "postgresql":  # SQLite runs one writer at a time
            until_waiting_for_a_lock(db, saving)
    saving.join(timeout=30)

    assert failed == []
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    for name in (first, second):
        _, key, read, expected = SAVES[name]
        assert read(workspace.settings.get(key)) == expected, name


def test_a_pause_through_the_api_keeps_the_quiet_hours_an_admin_saved_meanwhile(db):
    """On PostgreSQL (read committed) the API's change re-reads the settings under the
    row lock; SQLite runs one writer."""
    team = seed_team(db)
    with db.transaction() as session:
        login = login_as(session, team.workspace_id, team.admin_id)
    answers: list[int] = []

    def the_store_pauses_from_its_tools() -> None:
        with TestClient(web_app(db)) as client:
            answer = client.post("/api/v1/marketing/pause", headers=AUTH)
            answers.append(answer.status_code)

    pausing = threading.Thread(target=the_store_pauses_from_its_tools)
    with db.transaction() as session:
        _quiet_hours(session, login)
        session.flush()
        pausing.start()
        if db.engine.dialect.name == "postgresql":
            until_waiting_for_a_lock(db, pausing)
    pausing.join(timeout=30)

    assert answers == [200]
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert workspace.settings.get("marketing_paused") is not None
    assert workspace.settings["quiet_hours"] == SAVES["quiet_hours"][3]
