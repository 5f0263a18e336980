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

from sqlalchemy import ColumnElement, and_, delete, func, select
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
THROTTLED = "too many failed sign-ins: wait a few minutes and try again"
ADMINS_ONLY = "only an admin of this workspace may do that"


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
class WorkspaceRef:
    """A workspace someone belongs to, as the header's store switcher lists it."""

    slug: str
    name: str


@dataclass(frozen=True)
class Login:
    """Who is signed in, and to which workspace: what every handler scopes by.

    ``workspaces`` is every workspace this person belongs to (this one included), so
    someone in several stores can move to another without signing out.
    """

    session_id: int
    user_id: int
    email: str
    name: str
    workspace_id: int
    workspace_slug: str
    workspace_name: str
    role: str
    csrf_token: str
    workspaces: tuple[WorkspaceRef, ...] = ()

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


def _throttled(
    session: Session,
    *,
    email: str,
    ip: str,
    now: datetime,
    limits: LoginLimits,
    action: str,
    workspace_id: int | None,
) -> Refused | None:
    """A 429 (audited as ``action``) once this email or this address failed too often of
    late. Every form that checks a password asks here first, even for the right password,
    so guessing through any of them meets the same limit as the login form."""
    if _failures(session, email=email, ip=ip, since=now - limits.window) < limits.max_failures:
        return None
    audit(
        session,
        workspace_id=workspace_id,
        action=action,
        now=now,
        actor_email=email,
        ip=ip,
        succeeded=False,
    )
    return Refused(THROTTLED, 429)


def _count_failure(
    session: Session,
    *,
    email: str,
    ip: str,
    now: datetime,
    action: str,
    workspace_id: int | None,
    actor_id: int | None,
) -> None:
    """A wrong password: counted towards :func:`_throttled`'s limit, and audited."""
    session.add(LoginFailure(email=email, ip=ip, created_at=now))
    audit(
        session,
        workspace_id=workspace_id,
        action=action,
        now=now,
        actor_id=actor_id,
        actor_email=email,
        ip=ip,
        succeeded=False,
    )


def _places(session: Session, *, user_id: int) -> list[tuple[Membership, Workspace]]:
    """Every workspace this person belongs to, with their membership there, by name."""
    rows = session.execute(
        select(Membership, Workspace)
        .join(Workspace, Workspace.id == Membership.workspace_id)
        .where(Membership.user_id == user_id)
        .order_by(Workspace.name, Workspace.id)
    )
    return [(membership, workspace) for membership, workspace in rows]


def _refs(places: list[tuple[Membership, Workspace]]) -> tuple[WorkspaceRef, ...]:
    return tuple(WorkspaceRef(workspace.slug, workspace.name) for _, workspace in places)


def _start_session(
    session: Session,
    *,
    user: User,
    membership: Membership,
    workspace: Workspace,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    signed_in_at: datetime | None = None,
) -> SignedIn:
    """A new session (new id, new CSRF token). ``signed_in_at`` is when the password was
    last proven, for a session that continues another: the absolute timeout runs from it."""
    token = secrets.token_urlsafe(32)
    row = LoginSession(
        token_hash=token_digest(token),
        user_id=user.id,
        workspace_id=workspace.id,
        csrf_token=secrets.token_urlsafe(32),
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
        created_at=signed_in_at or now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    workspaces = _refs(_places(session, user_id=user.id))
    return SignedIn(token=token, login=_login(row, user, membership, workspace, workspaces))


def _login(
    row: LoginSession,
    user: User,
    membership: Membership,
    workspace: Workspace,
    workspaces: tuple[WorkspaceRef, ...],
) -> Login:
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
        workspaces=workspaces,
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
    refused = _throttled(
        session,
        email=address,
        ip=ip,
        now=now,
        limits=limits,
        action="sign_in_throttled",
        workspace_id=None,
    )
    if refused is not None:
        return refused
    user = session.scalar(select(User).where(User.email == address))
    checked = verify_password(user.password_hash if user else None, password)
    membership = None
    if user is not None and checked.ok:
        membership = session.scalar(
            select(Membership).where(Membership.user_id == user.id).order_by(Membership.id)
        )
    if user is None or not checked.ok or membership is None:
        _count_failure(
            session,
            email=address,
            ip=ip,
            now=now,
            action="sign_in",
            workspace_id=None,
            actor_id=user.id if user else None,
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
    effect on their very next click; read with the person's other workspaces, for the
    store switcher, in the one query.
    """
    row = session.scalar(select(LoginSession).where(LoginSession.token_hash == token_digest(token)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    places = _places(session, user_id=row.user_id)
    here = next((place for place in places if place[1].id == row.workspace_id), None)
    expired = (
        now - row.last_seen_at > policy.idle
        or now - row.created_at > policy.absolute
        or user is None
        or row.created_at < user.password_changed_at
    )
    if expired or here is None or user is None:
        session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    membership, workspace = here
    return _login(row, user, membership, workspace, _refs(places))


def sign_out(session: Session, *, token: str) -> None:
    """End the session ``token`` names, and with it at once any live stream it has open
    (the relay re-checks that person's streams when it reads ``session_ended``)."""
    ended = session.execute(
        delete(LoginSession)
        .where(LoginSession.token_hash == token_digest(token))
        .returning(LoginSession.workspace_id, LoginSession.user_id)
    ).first()
    if ended is not None:
        emit(session, workspace_id=ended.workspace_id, kind="session_ended", user_id=ended.user_id)


def change_password(
    session: Session,
    *,
    login: Login,
    current_password: str,
    new_password: str,
    ip: str,
    user_agent: str | None,
    now: datetime,
    limits: LoginLimits,
) -> SignedIn | Refused:
    """Set a new password and end every session of this user, everywhere; the browser that
    asked gets a fresh session so it stays signed in.

    A wrong current password is a failed sign-in of this person, throttled like one: a
    borrowed session must not be a way to guess the password and then take it over.
    """
    user = session.get_one(User, login.user_id)
    refused = _throttled(
        session,
        email=user.email,
        ip=ip,
        now=now,
        limits=limits,
        action="password_changed_throttled",
        workspace_id=login.workspace_id,
    )
    if refused is not None:
        return refused
    if not verify_password(user.password_hash, current_password).ok:
        _count_failure(
            session,
            email=user.email,
            ip=ip,
            now=now,
            action="password_changed",
            workspace_id=login.workspace_id,
            actor_id=user.id,
        )
        return Refused("the current password is wrong", 422)
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


def switch_workspace(
    session: Session,
    *,
    login: Login,
    slug: str,
    ip: str,
    user_agent: str | None,
    now: datetime,
) -> SignedIn:
    """Move a person who belongs to several workspaces to another of them.

    A session is bound to one workspace, so this ends the current one, and its live
    stream with it, and starts another (new id, new CSRF token, as at sign-in) for the
    chosen membership. The password was
    proven at sign-in, not here: the absolute timeout keeps running from then.
    """
    current = session.get(LoginSession, login.session_id)
    if current is None:
        raise Unauthenticated("your session has ended: sign in again")
    place = next((p for p in _places(session, user_id=login.user_id) if p[1].slug == slug), None)
    if place is None:
        raise NotFound("you are not a member of that store")
    membership, workspace = place
    signed_in_at = current.created_at
    session.delete(current)
    emit(session, workspace_id=login.workspace_id, kind="session_ended", user_id=login.user_id)
    signed_in = _start_session(
        session,
        user=session.get_one(User, login.user_id),
        membership=membership,
        workspace=workspace,
        ip=ip,
        user_agent=user_agent,
        now=now,
        signed_in_at=signed_in_at,
    )
    audit_as(session, signed_in.login, "sign_in", now=now, ip=ip, detail={"via": "store_switch"})
    return signed_in


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
        raise PermissionDenied(ADMINS_ONLY)


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
    """Change a member's role; an admin who stops being one takes their pending
    invitations with them."""
    require_admin(login)
    new_role = _role(role)
    admins = _admins_locked(session, login)
    membership = _membership(session, workspace_id=login.workspace_id, user_id=user_id)
    if membership.role == new_role:
        return
    if membership.role == Role.ADMIN and len(admins) <= 1:
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
    if old == Role.ADMIN:
        _revoke_invites_by(session, login=login, inviter_id=user_id, ip=ip, now=now)


def _admins_locked(session: Session, login: Login) -> list[Membership]:
    """The workspace's admins, their rows locked until commit, the actor among them.

    A change that could leave the workspace without an admin counts them here. Counted
    without a lock, two admins demoting (or removing) each other at the same moment would
    each see two admins under READ COMMITTED, and both succeed. Locked, the second waits
    for the first to commit and reads the rows again: then it counts one, and finds its
    own actor no longer an admin (their role was read when the request began). Rows are
    re-read, not taken from this session's memory. SQLite has one writer at a time and
    needs no lock.
    """
    admins = list(
        session.scalars(
            select(Membership)
            .where(Membership.workspace_id == login.workspace_id, Membership.role == Role.ADMIN)
            .order_by(Membership.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    if all(admin.user_id != login.user_id for admin in admins):
        raise PermissionDenied(ADMINS_ONLY)
    return admins


def remove_member(session: Session, *, login: Login, user_id: int, ip: str, now: datetime) -> None:
    """Take someone out of this workspace: their sessions here end, their live stream is
    cut as soon as the relay sees the event, and their pending invitations are revoked."""
    require_admin(login)
    admins = _admins_locked(session, login)
    membership = _membership(session, workspace_id=login.workspace_id, user_id=user_id)
    if membership.role == Role.ADMIN and len(admins) <= 1:
        raise Conflict("a workspace needs at least one admin")
    session.delete(membership)
    session.execute(
        delete(LoginSession).where(
            LoginSession.user_id == user_id, LoginSession.workspace_id == login.workspace_id
        )
    )
    emit(session, workspace_id=login.workspace_id, kind="member_removed", user_id=user_id)
    audit_as(session, login, "member_removed", now=now, ip=ip, detail={"user_id": user_id})
    _revoke_invites_by(session, login=login, inviter_id=user_id, ip=ip, now=now)


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


def _is_pending(workspace_id: int, now: datetime) -> ColumnElement[bool]:
    return and_(
        Invite.workspace_id == workspace_id,
        Invite.accepted_at.is_(None),
        Invite.expires_at > now,
    )


@dataclass(frozen=True)
class PendingInvite:
    id: int
    email: str
    role: str
    invited_by: str | None
    expires_at: datetime


def pending_invites(session: Session, *, workspace_id: int, now: datetime) -> list[PendingInvite]:
    """The workspace's invitations not yet used and not expired, oldest first, for the
    Team page: an admin sees every way into the store that is still open."""
    rows = session.execute(
        select(Invite.id, Invite.email, Invite.role, User.name, Invite.expires_at)
        .outerjoin(User, User.id == Invite.invited_by_id)
        .where(_is_pending(workspace_id, now))
        .order_by(Invite.created_at, Invite.id)
    )
    return [PendingInvite(*row) for row in rows]


def revoke_invite(
    session: Session, *, login: Login, invite_id: int, ip: str, now: datetime
) -> None:
    """Withdraw one of this workspace's pending invitations: its link stops working."""
    require_admin(login)
    row = session.scalar(
        select(Invite).where(Invite.id == invite_id, _is_pending(login.workspace_id, now))
    )
    if row is None:
        raise NotFound("no such pending invitation in this workspace")
    _revoke(session, login=login, invite=row, ip=ip, now=now)


def _revoke_invites_by(
    session: Session, *, login: Login, inviter_id: int, ip: str, now: datetime
) -> None:
    """Revoke the pending invitations ``inviter_id`` made here. They carry that admin's
    authority and must not outlive it: an admin about to be removed could otherwise
    invite an address of their own and walk back in after."""
    pending = session.scalars(
        select(Invite)
        .where(_is_pending(login.workspace_id, now), Invite.invited_by_id == inviter_id)
        .order_by(Invite.id)
    )
    for row in pending:
        _revoke(session, login=login, invite=row, ip=ip, now=now)


def _revoke(session: Session, *, login: Login, invite: Invite, ip: str, now: datetime) -> None:
    session.delete(invite)
    audit_as(
        session,
        login,
        "invite_revoked",
        now=now,
        ip=ip,
        detail={"email": invite.email, "role": invite.role, "invited_by": invite.invited_by_id},
    )


def open_invite(session: Session, *, workspace_id: int, token: str, now: datetime) -> Invite:
    """The unused, unexpired invite with this token *for this workspace*: an invite to one
    store can never be redeemed in another's sign-up flow.

    Its inviter must still be an admin there: removing or demoting an admin revokes their
    invitations, and this holds whatever else took the role away.
    """
    row = session.scalar(
        select(Invite).where(
            Invite.token_hash == token_digest(token), Invite.workspace_id == workspace_id
        )
    )
    if (
        row is None
        or row.accepted_at is not None
        or row.expires_at <= now
        or not _is_admin(session, workspace_id=workspace_id, user_id=row.invited_by_id)
    ):
        raise NotFound("this invitation is not valid: ask your admin for a new one")
    return row


def _is_admin(session: Session, *, workspace_id: int, user_id: int | None) -> bool:
    return user_id is not None and (
        session.scalar(
            select(Membership.id).where(
                Membership.workspace_id == workspace_id,
                Membership.user_id == user_id,
                Membership.role == Role.ADMIN,
            )
        )
        is not None
    )


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
    limits: LoginLimits,
) -> SignedIn | Refused:
    """Join the workspace: a new account, or an existing one proven by its password.

    That password check is a sign-in's, counted and throttled with the login form's:
    otherwise any store's admin could invite someone else's address and guess their
    password here without limit.
    """
    row = open_invite(session, workspace_id=workspace_id, token=token, now=now)
    user = session.scalar(select(User).where(User.email == row.email))
    if user is None:
        user = create_user(session, email=row.email, name=name, password=password, now=now)
    else:
        refused = _throttled(
            session,
            email=row.email,
            ip=ip,
            now=now,
            limits=limits,
            action="invite_accepted_throttled",
            workspace_id=workspace_id,
        )
        if refused is not None:
            return refused
        if not verify_password(user.password_hash, password).ok:
            _count_failure(
                session,
                email=row.email,
                ip=ip,
                now=now,
                action="invite_accepted",
                workspace_id=workspace_id,
                actor_id=user.id,
            )
            return Refused("you already have an account: enter its password to join", 401)
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
