"""Driving the agents' web app in tests: a seeded team, signed-in clients, CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from parley.accounts import service as accounts
from parley.accounts.models import Membership, Role, User
from parley.clock import utc_now
from parley.db import Database
from parley.demo.seed import seed_demo_team
from parley.http.app import create_app
from parley.runtime import Runtime
from parley.settings import get_settings
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace
from support import API_KEY, SECRET, seed

PASSWORD = "correct horse battery"
ADMIN = "admin@demo.parley.test"
AGENT = "agent@demo.parley.test"
OTHER_ADMIN = "owner@other.example"
# Cookies are Secure, so tests talk to the app over (pretend) HTTPS as a browser would.
BASE_URL = "https://testserver"
META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass(frozen=True)
class Team:
    """The demo workspace with an admin and an agent, and a second store with its admin."""

    workspace_id: int
    other_workspace_id: int
    admin_id: int
    agent_id: int
    other_admin_id: int


def seed_team(db: Database) -> Team:
    workspace_id = seed(db)
    now = utc_now()
    with db.transaction() as session:
        workspace = session.get_one(Workspace, workspace_id)
        seed_demo_team(session, workspace=workspace, admin_email=ADMIN, password=PASSWORD, now=now)
        other = workspaces.create_workspace(
            session, slug="other", name="Other Store", shopify_secret=SECRET, api_key=API_KEY + "2"
        )
        owner = accounts.create_user(
            session, email=OTHER_ADMIN, name="Olive Other", password=PASSWORD, now=now
        )
        accounts.add_member(
            session, workspace_id=other.id, user_id=owner.id, role=Role.ADMIN, now=now
        )
        ids = {m.email: m.user_id for m in accounts.members(session, workspace_id=workspace_id)}
        return Team(
            workspace_id=workspace_id,
            other_workspace_id=other.id,
            admin_id=ids[ADMIN],
            agent_id=ids[AGENT],
            other_admin_id=owner.id,
        )


def web_app(db: Database, **overrides: Any) -> Any:
    settings = get_settings(database_url=db.url, embedded_worker=False, **overrides)
    return create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))


@contextmanager
def browser(app: Any) -> Iterator[TestClient]:
    """A client that keeps cookies and follows no redirects, like a careful browser."""
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    found = META_CSRF.search(html)
    assert found, "page has no CSRF meta tag"
    return found.group(1)


def login_form_token(client: TestClient) -> str:
    page = client.get("/login", headers={"accept": "text/html"})
    if page.status_code == 303:  # already signed in: writes carry the session's token
        return session_csrf(client)
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token for later writes."""
    token = login_form_token(client)
    answer = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token, "next": "/inbox"}
    )
    assert answer.status_code == 303, answer.text
    return session_csrf(client)


def session_csrf(client: TestClient) -> str:
    page = client.get("/account", headers={"accept": "text/html"})
    assert page.status_code == 200, page.status_code
    return csrf_of(page.text)


def login_as(session: Any, workspace_id: int, user_id: int) -> accounts.Login:
    """The Login a signed-in member has, for calling domain functions directly."""
    user = session.get_one(User, user_id)
    membership = session.scalar(
        select(Membership).where(
            Membership.workspace_id == workspace_id, Membership.user_id == user_id
        )
    )
    assert membership is not None
    workspace = session.get_one(Workspace, workspace_id)
    return accounts.Login(
        session_id=0,
        user_id=user.id,
        email=user.email,
        name=user.name,
        workspace_id=workspace_id,
        workspace_slug=workspace.slug,
        workspace_name=workspace.name,
        role=membership.role,
        csrf_token="",
    )
