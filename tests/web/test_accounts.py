"""Signing in to the agents' inbox: argon2id, fresh session ids, timeouts, CSRF, throttling,
invites bound to their workspace, and roles checked on the server."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from parley.accounts import service as accounts
from parley.accounts.models import AuditEntry, Invite, LoginFailure, LoginSession, Membership, User
from parley.clock import utc_now
from parley.errors import Conflict, NotFound, PermissionDenied
from support import count, rows
from web_support import (
    ADMIN,
    AGENT,
    PASSWORD,
    browser,
    login_as,
    login_form_token,
    seed_team,
    session_csrf,
    sign_in,
    web_app,
)

SESSION_COOKIE = "__Host-parley_session"
HTML = {"accept": "text/html"}


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def test_inbox_without_a_session_redirects_to_the_login_form(app):
    with browser(app) as client:
        for accept in ("text/html", "*/*", ""):
            answer = client.get("/inbox", headers={"accept": accept})
            assert answer.status_code == 303, accept
            assert answer.headers["location"] == "/login?next=%2Finbox"
        fetch = client.get("/inbox", headers={"accept": "application/json"})
        assert fetch.status_code == 401
        form = client.get("/login")
    assert form.status_code == 200
    assert '<form method="post" action="/login"' in form.text
    assert 'name="csrf_token"' in form.text


def test_every_page_sends_a_content_security_policy_and_nosniff(app):
    with browser(app) as client:
        for path in ("/login", "/inbox", "/account", "/healthz", "/no-such-page"):
            answer = client.get(path)
            assert "default-src" in answer.headers["content-security-policy"], path
            assert answer.headers["x-content-type-options"] == "nosniff", path


def test_sign_in_sets_a_new_httponly_secure_samesite_session_cookie(app, db):
    with browser(app) as client:
        client.cookies.set(SESSION_COOKIE, "planted-by-an-attacker", domain="testserver")
        token = login_form_token(client)
        answer = client.post(
            "/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": token}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/inbox"
        cookie = next(
            v for k, v in answer.headers.multi_items() if v.startswith(SESSION_COOKIE + "=")
        )
        value = cookie.split(";")[0].split("=", 1)[1]
        assert value != "planted-by-an-attacker"
        assert len(value) >= 40
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=lax", "path=/"} <= flags
        assert client.get("/inbox").status_code == 200
    assert count(db, LoginSession) == 1
    # Only a digest is stored: the cookie itself is not in the table.
    assert rows(db, LoginSession)[0].token_hash == accounts.token_digest(value)


def test_signing_in_again_replaces_the_session_id(app, db):
    with browser(app) as client:
        sign_in(client, ADMIN)
        first = client.cookies.get(SESSION_COOKIE)
        sign_in(client, ADMIN)
        second = client.cookies.get(SESSION_COOKIE)
    assert first != second
    assert count(db, LoginSession) == 1


def test_wrong_password_is_refused_with_nothing_signed_in_and_the_attempt_audited(app, db):
    with browser(app) as client:
        token = login_form_token(client)
        answer = client.post(
            "/login", data={"email": ADMIN, "password": "wrong password!", "csrf_token": token}
        )
        assert answer.status_code == 401
        assert "The email or password is wrong".lower() in answer.text.lower()
        assert client.get("/inbox", headers={"accept": "text/html"}).status_code == 303
    assert count(db, LoginSession) == 0
    audit = rows(db, AuditEntry)
    assert [(a.action, a.succeeded, a.actor_email) for a in audit] == [("sign_in", False, ADMIN)]


def test_repeated_failures_lock_the_login_even_for_the_right_password(app, db):
    with browser(app) as client:
        token = login_form_token(client)
        statuses = [
            client.post(
                "/login", data={"email": ADMIN, "password": f"guess {n}", "csrf_token": token}
            ).status_code
            for n in range(10)
        ]
        assert statuses == [401] * 10
        locked = client.post(
            "/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": token}
        )
    assert locked.status_code == 429
    assert "too many failed sign-ins" in locked.text
    assert count(db, LoginSession) == 0


def test_passwords_are_hashed_with_argon2id_and_upgraded_at_login(app, db):
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == AGENT))
        assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    with browser(app) as client:
        sign_in(client, AGENT)
    with db.transaction() as session:
        upgraded = session.scalar(select(User.password_hash).where(User.email == AGENT))
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_password_change_ends_every_other_session(app, db):
    with browser(app) as laptop, browser(app) as phone:
        sign_in(laptop, AGENT)
        sign_in(phone, AGENT)
        csrf = session_csrf(laptop)
        answer = laptop.post(
            "/account/password",
            data={
                "current_password": PASSWORD,
                "new_password": "a much better passphrase",
                "csrf_token": csrf,
            },
        )
        assert answer.status_code == 200
        assert "Every other session has been signed out" in answer.text
        assert phone.get("/inbox", headers={"accept": "application/json"}).status_code == 401
        assert laptop.get("/inbox").status_code == 200
    assert count(db, LoginSession) == 1


def test_a_wrong_current_password_changes_nothing(app, db):
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            "/account/password",
            data={"current_password": "nope", "new_password": "x" * 12, "csrf_token": csrf},
        )
        assert answer.status_code == 422
        assert client.get("/inbox").status_code == 200
    with browser(app) as other:
        sign_in(other, AGENT)


def test_sessions_end_after_the_idle_timeout(frozen_clock, app):
    with browser(app) as client:
        sign_in(client, AGENT)
        frozen_clock.advance(timedelta(minutes=119))
        assert client.get("/inbox").status_code == 200
        frozen_clock.advance(timedelta(minutes=121))
        assert client.get("/inbox", headers={"accept": "text/html"}).status_code == 303


def test_sessions_end_after_the_absolute_timeout_however_busy(frozen_clock, app):
    with browser(app) as client:
        sign_in(client, AGENT)
        for _ in range(12):
            frozen_clock.advance(timedelta(minutes=59))
            assert client.get("/inbox").status_code == 200
        frozen_clock.advance(timedelta(minutes=59))
        assert client.get("/inbox", headers={"accept": "application/json"}).status_code == 401


def test_a_write_without_the_csrf_token_is_refused_and_changes_nothing(app, db):
    with browser(app) as client:
        sign_in(client, AGENT)
        refused = client.post("/logout")
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        wrong = client.post("/logout", data={"csrf_token": "not-the-token"})
        assert wrong.status_code == 403
        assert client.get("/inbox").status_code == 200
    assert count(db, LoginSession) == 1


def test_a_cross_origin_write_is_refused_even_with_the_token(app, db):
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        answer = client.post(
            "/logout", data={"csrf_token": csrf}, headers={"origin": "https://evil.example"}
        )
        assert answer.status_code == 403
        assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert count(db, LoginSession) == 0


def test_the_login_form_itself_needs_its_csrf_token(app, db):
    with browser(app) as client:
        answer = client.post("/login", data={"email": ADMIN, "password": PASSWORD})
    assert answer.status_code == 403
    assert count(db, LoginSession) == 0


def test_an_invite_joins_only_the_workspace_it_was_made_for(app, db, team):
    with db.transaction() as session:
        admin = login_as(session, team.workspace_id, team.admin_id)
        invitation = accounts.invite(
            session,
            login=admin,
            email="new.agent@example.com",
            role="agent",
            ip="127.0.0.1",
            now=utc_now(),
            valid_for=timedelta(days=7),
        )
    with browser(app) as client:
        elsewhere = client.get(f"/invite/other/{invitation.token}", headers={"accept": "text/html"})
        assert elsewhere.status_code == 404
        page = client.get(f"/invite/demo/{invitation.token}")
        assert page.status_code == 200
        assert "new.agent@example.com" in page.text
        token = login_form_token(client)
        refused = client.post(
            f"/invite/other/{invitation.token}",
            data={"name": "New", "password": "long enough pw", "csrf_token": token},
        )
        assert refused.status_code == 404
        assert count(db, User, User.email == "new.agent@example.com") == 0
        joined = client.post(
            f"/invite/demo/{invitation.token}",
            data={"name": "New Agent", "password": "long enough pw", "csrf_token": token},
        )
        assert joined.status_code == 303
        assert client.get("/inbox").status_code == 200
    with db.transaction() as session:
        membership = session.scalar(
            select(Membership).join(User).where(User.email == "new.agent@example.com")
        )
        assert (membership.workspace_id, membership.role) == (team.workspace_id, "agent")
        assert session.scalar(select(Invite.accepted_at)) is not None


def test_an_agent_cannot_change_roles_invite_or_remove_anyone(db, team):
    with db.transaction() as session:
        agent = login_as(session, team.workspace_id, team.agent_id)
        with pytest.raises(PermissionDenied):
            accounts.set_role(
                session, login=agent, user_id=team.agent_id, role="admin", ip="x", now=utc_now()
            )
        with pytest.raises(PermissionDenied):
            accounts.invite(
                session,
                login=agent,
                email="friend@example.com",
                role="admin",
                ip="x",
                now=utc_now(),
                valid_for=timedelta(days=1),
            )
        with pytest.raises(PermissionDenied):
            accounts.remove_member(
                session, login=agent, user_id=team.admin_id, ip="x", now=utc_now()
            )
    assert [(m.user_id, m.role) for m in rows(db, Membership, Membership.role == "admin")] == [
        (team.admin_id, "admin"),
        (team.other_admin_id, "admin"),
    ]
    assert count(db, Invite) == 0


def test_an_admin_cannot_reach_members_of_another_workspace(db, team):
    with db.transaction() as session:
        admin = login_as(session, team.workspace_id, team.admin_id)
        with pytest.raises(NotFound):
            accounts.set_role(
                session,
                login=admin,
                user_id=team.other_admin_id,
                role="agent",
                ip="x",
                now=utc_now(),
            )


def test_removing_a_member_ends_their_sessions_in_that_workspace(app, db, team):
    with browser(app) as agent_browser:
        sign_in(agent_browser, AGENT)
        with db.transaction() as session:
            admin = login_as(session, team.workspace_id, team.admin_id)
            accounts.remove_member(
                session, login=admin, user_id=team.agent_id, ip="x", now=utc_now()
            )
        assert agent_browser.get("/inbox", headers={"accept": "text/html"}).status_code == 303
    actions = [a.action for a in rows(db, AuditEntry)]
    assert actions == ["sign_in", "member_removed"]


# Throttling every place a password is checked


def _invite_into_other_store(db, team, email: str) -> str:
    """The other store's admin invites ``email`` to it; the invitation's token."""
    with db.transaction() as session:
        owner = login_as(session, team.other_workspace_id, team.other_admin_id)
        return accounts.invite(
            session,
            login=owner,
            email=email,
            role="agent",
            ip="203.0.113.9",
            now=utc_now(),
            valid_for=timedelta(days=7),
        ).token


def test_guessing_a_password_through_an_invite_is_throttled_like_sign_in(app, db, team):
    """Another store's admin invites this store's admin, then guesses their password on
    the invitation: each wrong guess is a failed sign-in, and past the limit even the
    right password is refused, there and on /login."""
    token = _invite_into_other_store(db, team, ADMIN)
    with browser(app) as attacker:
        csrf = login_form_token(attacker)
        statuses = [
            attacker.post(
                f"/invite/other/{token}",
                data={"name": "x", "password": f"guess {n}", "csrf_token": csrf},
            ).status_code
            for n in range(10)
        ]
        locked = attacker.post(
            f"/invite/other/{token}", data={"name": "x", "password": PASSWORD, "csrf_token": csrf}
        )
    with browser(app) as owner:
        csrf = login_form_token(owner)
        sign_in_locked = owner.post(
            "/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": csrf}
        )
    assert statuses == [401] * 10
    assert (locked.status_code, sign_in_locked.status_code) == (429, 429)
    assert "too many failed sign-ins" in locked.text
    assert count(db, LoginFailure, LoginFailure.email == ADMIN) == 10
    assert [m.workspace_id for m in rows(db, Membership, Membership.user_id == team.admin_id)] == [
        team.workspace_id
    ]
    assert count(db, LoginSession) == 0
    assert rows(db, Invite)[0].accepted_at is None
    assert [(a.workspace_id, a.action, a.succeeded) for a in rows(db, AuditEntry)][1:] == [
        (team.other_workspace_id, "invite_accepted", False)
    ] * 10 + [
        (team.other_workspace_id, "invite_accepted_throttled", False),
        (None, "sign_in_throttled", False),
    ]


def test_guessing_the_current_password_on_the_account_page_is_throttled_like_sign_in(app, db):
    """A borrowed session cannot guess its way to the password: wrong current passwords
    count as failed sign-ins, and past the limit the right one changes nothing either."""
    with db.transaction() as session:
        before = session.scalar(select(User).where(User.email == AGENT))
        hash_before, changed_before = before.password_hash, before.password_changed_at
    with browser(app) as thief:
        csrf = sign_in(thief, AGENT)
        statuses = [
            thief.post(
                "/account/password",
                data={
                    "current_password": f"guess {n}",
                    "new_password": "taken over for good",
                    "csrf_token": csrf,
                },
            ).status_code
            for n in range(10)
        ]
        locked = thief.post(
            "/account/password",
            data={
                "current_password": PASSWORD,
                "new_password": "taken over for good",
                "csrf_token": csrf,
            },
        )
    assert statuses == [422] * 10
    assert locked.status_code == 429
    assert "too many failed sign-ins" in locked.text
    assert count(db, LoginFailure, LoginFailure.email == AGENT) == 10
    with db.transaction() as session:
        after = session.scalar(select(User).where(User.email == AGENT))
        assert (after.password_hash, after.password_changed_at) == (hash_before, changed_before)
    assert count(db, LoginSession) == 1
    assert [(a.action, a.succeeded) for a in rows(db, AuditEntry)][1:] == [
        ("password_changed", False)
    ] * 10 + [("password_changed_throttled", False)]


# People in more than one store


def _member_of_both_stores(db, team) -> None:
    """The demo store's admin joins the other store as an agent (as an invite would)."""
    with db.transaction() as session:
        accounts.add_member(
            session,
            workspace_id=team.other_workspace_id,
            user_id=team.admin_id,
            role="agent",
            now=utc_now(),
        )


def test_a_person_in_two_stores_switches_to_the_other_with_a_new_session(app, db, team):
    _member_of_both_stores(db, team)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        first = client.cookies.get(SESSION_COOKIE)
        inbox = client.get("/inbox", headers=HTML)
        switched = client.post("/account/store", data={"store": "other", "csrf_token": csrf})
        second = client.cookies.get(SESSION_COOKIE)
        there = client.get("/inbox", headers=HTML)
        old_csrf_refused = client.post("/logout", data={"csrf_token": csrf})
    assert 'data-test="store-switch"' in inbox.text
    assert '<option value="other"' in inbox.text
    assert (switched.status_code, switched.headers["location"]) == (303, "/inbox")
    assert second != first
    assert there.status_code == 200
    assert '<option value="other" selected>Other Store</option>' in there.text
    assert old_csrf_refused.status_code == 403
    [session] = rows(db, LoginSession)
    assert (session.workspace_id, session.token_hash) == (
        team.other_workspace_id,
        accounts.token_digest(second),
    )
    assert [(a.workspace_id, a.action, a.detail) for a in rows(db, AuditEntry)] == [
        (team.workspace_id, "sign_in", {}),
        (team.other_workspace_id, "sign_in", {"via": "store_switch"}),
    ]


def test_a_person_in_one_store_is_offered_no_switch_and_cannot_switch_into_another(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        before = client.cookies.get(SESSION_COOKIE)
        inbox = client.get("/inbox", headers=HTML)
        refused = client.post("/account/store", data={"store": "other", "csrf_token": csrf})
        after = client.cookies.get(SESSION_COOKIE)
        still = client.get("/inbox", headers=HTML)
    assert 'data-test="store-switch"' not in inbox.text
    assert refused.status_code == 404
    assert "Other Store" not in refused.text
    assert (after, still.status_code) == (before, 200)
    [session] = rows(db, LoginSession)
    assert session.workspace_id == team.workspace_id
    assert [a.action for a in rows(db, AuditEntry)] == ["sign_in"]


def test_switching_stores_does_not_extend_the_absolute_timeout(frozen_clock, app, db, team):
    _member_of_both_stores(db, team)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        for _ in range(11):
            frozen_clock.advance(timedelta(minutes=59))
            assert client.get("/inbox").status_code == 200
        switched = client.post("/account/store", data={"store": "other", "csrf_token": csrf})
        assert switched.status_code == 303
        frozen_clock.advance(timedelta(minutes=59))
        assert client.get("/inbox").status_code == 200
        frozen_clock.advance(timedelta(minutes=59))
        assert client.get("/inbox", headers={"accept": "application/json"}).status_code == 401


# The last admin


def _second_admin(db, team) -> int:
    with db.transaction() as session:
        user = accounts.create_user(
            session, email="second.admin@example.com", name="Sam", password=PASSWORD, now=utc_now()
        )
        accounts.add_member(
            session, workspace_id=team.workspace_id, user_id=user.id, role="admin", now=utc_now()
        )
        return user.id


def _take_admin_role(session, login: accounts.Login, user_id: int, move: str) -> None:
    if move == "demote":
        accounts.set_role(
            session, login=login, user_id=user_id, role="agent", ip="x", now=utc_now()
        )
    else:
        accounts.remove_member(session, login=login, user_id=user_id, ip="x", now=utc_now())


@pytest.mark.parametrize("move", ["demote", "remove"])
def test_two_admins_taking_each_others_admin_role_at_once_leave_one_admin(db, team, move):
    """Each admin's change checks that another admin remains: made at the same moment
    (the first not yet committed when the second counts), the second must see the first."""
    second_id = _second_admin(db, team)
    with db.transaction() as session:  # as each request resolved its login, before the race
        first_admin = login_as(session, team.workspace_id, team.admin_id)
        second_admin = login_as(session, team.workspace_id, second_id)
    first_written = threading.Event()
    second_finished = threading.Event()
    outcome: dict[str, str] = {}

    def first() -> None:
        with db.transaction() as session:
            _take_admin_role(session, first_admin, second_id, move)
            session.flush()
            first_written.set()
            second_finished.wait(timeout=1)
        outcome["first"] = "committed"

    def second() -> None:
        first_written.wait(timeout=10)
        try:
            with db.transaction() as session:
                _take_admin_role(session, second_admin, team.admin_id, move)
            outcome["second"] = "committed"
        except (Conflict, PermissionDenied) as exc:
            outcome["second"] = f"refused: {exc.message}"
        finally:
            second_finished.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert outcome == {
        "first": "committed",
        "second": "refused: only an admin of this workspace may do that",
    }
    admins = rows(db, Membership, Membership.workspace_id == team.workspace_id)
    assert [(m.user_id, m.role) for m in admins if m.role == "admin"] == [(team.admin_id, "admin")]
