"""The web app's security properties, checked over every route the app has, so a route
added later is covered without anyone remembering to add it here."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Mount, Route

from parley.accounts.models import AuditEntry, LoginSession
from parley.http.web.security import TOKEN_AUTHENTICATED
from support import count
from web_support import ADMIN, browser, seed_team, sign_in, web_app

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def cookie_routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every cookie-authenticated write route."""
    found = []
    for route in app.routes:
        if isinstance(route, Route) and not route.path.startswith(TOKEN_AUTHENTICATED):
            for method in sorted((route.methods or set()) & MUTATING):
                found.append((method, route.path))
    return found


def concrete(path: str) -> str:
    return PARAM.sub("1", path)


@pytest.fixture
def app(db):
    seed_team(db)
    return web_app(db)


def test_the_app_has_cookie_authenticated_write_routes_to_check(app):
    routes = cookie_routes(app)
    assert ("POST", "/login") in routes
    assert ("POST", "/logout") in routes
    assert not any(isinstance(r, Mount) and r.path == "/inbox" for r in app.routes)


def test_every_mutating_route_without_a_csrf_token_is_refused(app, db):
    routes = cookie_routes(app)
    with browser(app) as client:
        sign_in(client, ADMIN)
        sessions_before = count(db, LoginSession)
        audit_before = count(db, AuditEntry)
        for method, path in routes:
            answer = client.request(method, concrete(path), data={"x": "1"})
            assert answer.status_code == 403, f"{method} {path} answered {answer.status_code}"
            assert "CSRF" in answer.text, (method, path)
        # A token from another session is no better than none.
        for method, path in routes:
            answer = client.request(
                method, concrete(path), data={"csrf_token": "forged"}, headers={"x-csrf-token": "x"}
            )
            assert answer.status_code == 403, f"{method} {path} answered {answer.status_code}"
        assert client.get("/inbox").status_code == 200
    assert count(db, LoginSession) == sessions_before
    assert count(db, AuditEntry) == audit_before


def test_every_mutating_route_refuses_a_cross_site_origin(app):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        for method, path in cookie_routes(app):
            answer = client.request(
                method,
                concrete(path),
                data={"csrf_token": csrf},
                headers={"origin": "https://attacker.example"},
            )
            assert answer.status_code == 403, f"{method} {path} answered {answer.status_code}"
