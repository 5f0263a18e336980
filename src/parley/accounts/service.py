"""Signing in and out, sessions, invitations, roles and the audit trail.

Every function that acts for somebody takes their :class:`Login` and checks the role here,
on the server, whatever the page offered them. Session tokens and invite tokens are random
and stored only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from parley.accounts.models import (
    AuditEntry,
    Invite,
    LoginFailure,
    LoginSession,
    Membership,
    Role,
    User,
)
from parley.accounts.passwords import hash_password, password_problem, verify_password
from parley.customers.identity import normalise_email
from parley.errors import Conflict, Invalid, NotFound, PermissionDenied, Unauthenticated
from parley.live.outbox import emit
from parley.workspaces.models import Workspace

TOUCH_EVERY = timedelta(seconds=60)
"""A session's ``last_seen_at`` is written at most this often: idle timeouts are minutes,
and a write per request would serialise every page view on SQLite."""

WRONG_LOGIN = "the email or password is wrong"


@dataclass(frozen=True)
class Refused:
    """A refused sign-in. Returned, not raised, so the failure it records is committed."""

    reason: str
    status_code: int


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class LoginLimits:
    max_failures: int
    window: timedelta


@dataclass(frozen=True)
class Login:
    """Who is signed in, and to which workspace: what every handler scopes by."""

    session_id: int
    user_id: int
    email: str
    name: str
    workspace_id: int
    workspace_slug: str
    workspace_name: str
    role: str
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class SignedIn:
    token: str
    login: Login


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _email(value: str) -> str:
    email = normalise_email(value)
    if email is None:
        raise Invalid("enter a valid email address")
    return email


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid(f"unknown role {value!r}: use admin or agent") from None


def create_user(session: Session, *, email: str, name: str, password: str, now: datetime) -> User:
    address = _email(email)
    problem = password_problem(password)
    if problem:
        raise Invalid(f"password refused: {problem}")
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"a user with the email {address} already exists")
    user = User(
        email=address,
        name=name.strip() or address,
        password_hash=hash_password(password),
        password_changed_at=now,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def add_member(
    session: Session, *, workspace_id: int, user_id: int, role: str, now: datetime
) -> Membership:
    existing = session.scalar(
        select(Membership).where(
            Membership.workspace_id == workspace_id, Membership.user_id == user_id
        )
    )
    if existing is not None:
        raise Conflict("that person is already a member of this workspace")
    membership = Membership(
        workspace_id=workspace_id, user_id=user_id, role=_role(role), created_at=now
    )
    session.add(membership)
    session.flush()
    return membership


def audit(
    session: Session,
    *,
    workspace_id: int | None,
    action: str,
    now: datetime,
    actor_id: int | None = None,
    actor_email: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
    succeeded: bool = True,
) -> None:
    """Append one row to the audit log (never updated, never deleted)."""
    session.add(
        AuditEntry(
            workspace_id=workspace_id,
            actor_id=actor_id,
            actor_email=actor_email,
            action=action,
            ip=ip,
            detail=detail or {},
            succeeded=succeeded,
            created_at=now,
        )
    )


def audit_as(
    session: Session,
    login: Login,
    action: str,
    *,
    now: datetime,
    ip: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    audit(
        session,
        workspace_id=login.workspace_id,
        action=action,
        now=now,
        actor_id=login.user_id,
        actor_email=login.email,
        ip=ip,
        detail=detail,
    )


def audit_entries(
    session: Session, *, workspace_id: int, limit: int = 100, before_id: int | None = None
) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def _failures(session: Session, *, email: str, ip: str, since: datetime) -> int:
    by_email = session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.email == email, LoginFailure.created_at >= since)
    )
    by_ip = session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.ip == ip, LoginFailure.created_at >= since)
    )
    return max(by_email or 0, by_ip or 0)


def _start_session(
    session: Session,
    *,
    user: User,
    membership: Membership,
    workspace: Workspace,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> SignedIn:
    token = secrets.token_urlsafe(32)
    row = LoginSession(
        token_hash=token_digest(token),
        user_id=user.id,
        workspace_id=workspace.id,
        csrf_token=secrets.token_urlsafe(32),
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    return SignedIn(token=token, login=_login(row, user, membership, workspace))


def _login(row: LoginSession, user: User, membership: Membership, workspace: Workspace) -> Login:
    return Login(
        session_id=row.id,
        user_id=user.id,
        email=user.email,
        name=user.name,
        workspace_id=workspace.id,
        workspace_slug=workspace.slug,
        workspace_name=workspace.name,
        role=membership.role,
        csrf_token=row.csrf_token,
    )


def sign_in(
    session: Session,
    *,
    email: str,
    password: str,
    ip: str,
    user_agent: str | None,
    now: datetime,
    limits: LoginLimits,
    previous_token: str | None = None,
) -> SignedIn | Refused:
    """A new session for the right password; refusals are counted, throttled and audited.

    Any session the browser already had ends here, so a planted session id never survives
    a sign-in (session fixation).
    """
    address = normalise_email(email) or email.strip().lower()[:320]
    if previous_token:
        sign_out(session, token=previous_token)
    if _failures(session, email=address, ip=ip, since=now - limits.window) >= limits.max_failures:
        audit(
            session,
            workspace_id=None,
            action="sign_in_throttled",
            now=now,
            actor_email=address,
            ip=ip,
            succeeded=False,
        )
        return Refused("too many failed sign-ins: wait a few minutes and try again", 429)
    user = session.scalar(select(User).where(User.email == address))
    checked = verify_password(user.password_hash if user else None, password)
    membership = None
    if user is not None and checked.ok:
        membership = session.scalar(
            select(Membership).where(Membership.user_id == user.id).order_by(Membership.id)
        )
    if user is None or not checked.ok or membership is None:
        session.add(LoginFailure(email=address, ip=ip, created_at=now))
        audit(
            session,
            workspace_id=membership.workspace_id if membership else None,
            action="sign_in",
            now=now,
            actor_id=user.id if user else None,
            actor_email=address,
            ip=ip,
            succeeded=False,
        )
        return Refused(WRONG_LOGIN, 401)
    if checked.needs_rehash:
        user.password_hash = hash_password(password)
    workspace = session.get_one(Workspace, membership.workspace_id)
    signed_in = _start_session(
        session,
        user=user,
        membership=membership,
        workspace=workspace,
        ip=ip,
        user_agent=user_agent,
        now=now,
    )
    audit_as(session, signed_in.login, "sign_in", now=now, ip=ip)
    return signed_in


def resume(session: Session, *, token: str, now: datetime, policy: SessionPolicy) -> Login | None:
    """The login behind a session cookie, or None once it ended, idled out or expired.

    The membership is read on every request, so a removed member or a changed role takes
    effect on their very next click.
    """
    row = session.scalar(select(LoginSession).where(LoginSession.token_hash == token_digest(token)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    membership = session.scalar(
        select(Membership).where(
            Membership.workspace_id == row.workspace_id, Membership.user_id == row.user_id
        )
    )
    expired = (
        now - row.last_seen_at > policy.idle
        or now - row.created_at > policy.absolute
        or user is None
        or row.created_at < user.password_changed_at
    )
    if expired or membership is None or user is None:
        session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return _login(row, user, membership, session.get_one(Workspace, row.workspace_id))


def sign_out(session: Session, *, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.token_hash == token_digest(token)))


def change_password(
    session: Session,
    *,
    login: Login,
    current_password: str,
    new_password: str,
    ip: str,
    user_agent: str | None,
    now: datetime,
) -> SignedIn:
    """Set a new password and end every session of this user, everywhere; the browser that
    asked gets a fresh session so it stays signed in."""
    user = session.get_one(User, login.user_id)
    if not verify_password(user.password_hash, current_password).ok:
        raise Invalid("the current password is wrong")
    problem = password_problem(new_password)
    if problem:
        raise Invalid(f"new password refused: {problem}")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    membership = _membership(session, workspace_id=login.workspace_id, user_id=user.id)
    workspace = session.get_one(Workspace, login.workspace_id)
    audit_as(session, login, "password_changed", now=now, ip=ip)
    emit(session, workspace_id=login.workspace_id, kind="session_ended", user_id=user.id)
    return _start_session(
        session,
        user=user,
        membership=membership,
        workspace=workspace,
        ip=ip,
        user_agent=user_agent,
        now=now,
    )


def _membership(session: Session, *, workspace_id: int, user_id: int) -> Membership:
    membership = session.scalar(
        select(Membership).where(
            Membership.workspace_id == workspace_id, Membership.user_id == user_id
        )
    )
    if membership is None:
        raise NotFound("no such member in this workspace")
    return membership


def require_admin(login: Login) -> None:
    if not login.is_admin:
        raise PermissionDenied("only an admin of this workspace may do that")


@dataclass(frozen=True)
class Member:
    user_id: int
    email: str
    name: str
    role: str
    since: datetime


def members(session: Session, *, workspace_id: int) -> list[Member]:
    rows = session.execute(
        select(User.id, User.email, User.name, Membership.role, Membership.created_at)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(User.name, User.id)
    )
    return [Member(*row) for row in rows]


def set_role(
    session: Session, *, login: Login, user_id: int, role: str, ip: str, now: datetime
) -> None:
    require_admin(login)
    new_role = _role(role)
    membership = _membership(session, workspace_id=login.workspace_id, user_id=user_id)
    if membership.role == new_role:
        return
    if membership.role == Role.ADMIN and _admin_count(session, login.workspace_id) <= 1:
        raise Conflict("a workspace needs at least one admin")
    old = membership.role
    membership.role = new_role
    audit_as(
        session,
        login,
        "role_changed",
        now=now,
        ip=ip,
        detail={"user_id": user_id, "from": old, "to": new_role},
    )


def _admin_count(session: Session, workspace_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.workspace_id == workspace_id, Membership.role == Role.ADMIN)
        )
        or 0
    )


def remove_member(session: Session, *, login: Login, user_id: int, ip: str, now: datetime) -> None:
    """Take someone out of this workspace: their sessions here end and their live stream
    is cut as soon as the relay sees the event."""
    require_admin(login)
    membership = _membership(session, workspace_id=login.workspace_id, user_id=user_id)
    if membership.role == Role.ADMIN and _admin_count(session, login.workspace_id) <= 1:
        raise Conflict("a workspace needs at least one admin")
    session.delete(membership)
    session.execute(
        delete(LoginSession).where(
            LoginSession.user_id == user_id, LoginSession.workspace_id == login.workspace_id
        )
    )
    emit(session, workspace_id=login.workspace_id, kind="member_removed", user_id=user_id)
    audit_as(session, login, "member_removed", now=now, ip=ip, detail={"user_id": user_id})


@dataclass(frozen=True)
class Invitation:
    invite: Invite
    token: str


def invite(
    session: Session,
    *,
    login: Login,
    email: str,
    role: str,
    ip: str,
    now: datetime,
    valid_for: timedelta,
) -> Invitation:
    require_admin(login)
    address = _email(email)
    token = secrets.token_urlsafe(32)
    row = Invite(
        workspace_id=login.workspace_id,
        token_hash=token_digest(token),
        email=address,
        role=_role(role),
        invited_by_id=login.user_id,
        expires_at=now + valid_for,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit_as(session, login, "invited", now=now, ip=ip, detail={"email": address, "role": role})
    return Invitation(invite=row, token=token)


def open_invite(session: Session, *, workspace_id: int, token: str, now: datetime) -> Invite:
    """The unused, unexpired invite with this token *for this workspace*: an invite to one
    store can never be redeemed in another's sign-up flow."""
    row = session.scalar(
        select(Invite).where(
            Invite.token_hash == token_digest(token), Invite.workspace_id == workspace_id
        )
    )
    if row is None or row.accepted_at is not None or row.expires_at <= now:
        raise NotFound("this invitation is not valid: ask your admin for a new one")
    return row


def accept_invite(
    session: Session,
    *,
    workspace_id: int,
    token: str,
    name: str,
    password: str,
    ip: str,
    user_agent: str | None,
    now: datetime,
) -> SignedIn:
    """Join the workspace: a new account, or an existing one proven by its password."""
    row = open_invite(session, workspace_id=workspace_id, token=token, now=now)
    user = session.scalar(select(User).where(User.email == row.email))
    if user is None:
        user = create_user(session, email=row.email, name=name, password=password, now=now)
    elif not verify_password(user.password_hash, password).ok:
        raise Unauthenticated("you already have an account: enter its password to join")
    membership = add_member(
        session, workspace_id=workspace_id, user_id=user.id, role=row.role, now=now
    )
    row.accepted_at = now
    workspace = session.get_one(Workspace, workspace_id)
    signed_in = _start_session(
        session,
        user=user,
        membership=membership,
        workspace=workspace,
        ip=ip,
        user_agent=user_agent,
        now=now,
    )
    audit_as(session, signed_in.login, "invite_accepted", now=now, ip=ip, detail={"role": row.role})
    return signed_in
