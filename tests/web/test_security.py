"""The web app's security properties, checked over every route the app has, so a route
added later is covered without anyone remembering to add it here."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from starlette.routing import Mount, Route

from parley.accounts.models import AuditEntry, Invite, LoginSession, Membership
from parley.http.web.security import TOKEN_AUTHENTICATED
from parley.privacy.models import PrivacyRequest, RequestKind, RequestStatus
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


# Every route that takes an id, with where that id comes from. A new route with an id
# fails ``test_every_id_route_is_covered`` until it is listed here.
ID_ROUTES = {
    "/inbox/{conversation_id:int}": ("conversation",),
    "/inbox/{conversation_id:int}/_timeline": ("conversation",),
    "/inbox/{conversation_id:int}/_sidebar": ("conversation",),
    "/inbox/{id:int}/_composer": ("conversation",),
    "/inbox/{id:int}/canned/{canned_id:int}": ("conversation", "canned"),
    "/inbox/{id:int}/reply": ("conversation",),
    "/inbox/{id:int}/note": ("conversation",),
    "/inbox/{id:int}/assign": ("conversation",),
    "/inbox/{id:int}/snooze": ("conversation",),
    "/inbox/{id:int}/resolve": ("conversation",),
    "/inbox/{id:int}/reopen": ("conversation",),
    "/inbox/{id:int}/hand-back": ("conversation",),
    "/inbox/{id:int}/take-over": ("conversation",),
    "/customers/{customer_id:int}/merge": ("customer",),
    "/customers/{customer_id:int}/merges/{merge_id:int}/unmerge": ("customer", "merge"),
    "/customers/{customer_id:int}/upcoming/{job_id:int}/cancel": ("customer", "job"),
    "/admin/canned-replies/{id:int}": ("canned",),
    "/admin/canned-replies/{id:int}/delete": ("canned",),
    "/admin/channels/{account_id}/secrets": ("account",),
    "/admin/channels/{account_id}/active": ("account",),
    "/admin/channels/{account_id}/check": ("account",),
    "/admin/team/{user_id}/role": ("user",),
    "/admin/team/{user_id}/remove": ("user",),
    "/admin/team/invites/{invite_id}/revoke": ("invite",),
    "/admin/failed/{job_id}/retry": ("job",),
    "/admin/privacy/{request_id}/export.json": ("privacy_request",),
    "/inbox/{id:int}/messages/{message_id:int}/send-again": ("conversation", "message"),
    "/admin/failed/held/{message_id}/arrived": ("held",),
    "/admin/failed/held/{message_id}/send-again": ("held",),
    "/media/messages/{message_id:int}/{index:int}": ("message", "first"),
}
# Routes whose parameters are names scoped by the signed-in workspace, not ids, or that are
# public by token.
NOT_ID_ROUTES = {
    "/invite/{workspace}/{token}",
    "/admin/journeys/{key}",
    "/admin/journeys/{key}/enabled",
    "/admin/journeys/{key}/timing",
    "/admin/journeys/{key}/templates/{message}/{channel}",
}
OTHER_NAME = "Zebediah Elsewhere"


def id_routes(app) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, Route) and "{" in route.path:
            if route.path.startswith(TOKEN_AUTHENTICATED):
                continue
            for method in sorted((route.methods or set()) - {"HEAD"}):
                found.append((method, route.path))
    return found


def test_every_id_route_is_covered(app):
    unlisted = {path for _, path in id_routes(app)} - set(ID_ROUTES) - NOT_ID_ROUTES
    assert unlisted == set()


@pytest.fixture
def elsewhere(db, app):
    """The other store's conversation, customers, merge, canned reply, account and job."""
    from parley.channels.base import ChannelKind
    from parley.clock import utc_now
    from parley.customers import merges
    from parley.customers.models import Customer
    from parley.inbox.models import CannedReply
    from parley.jobs.models import Job
    from parley.messaging.models import Message, MessageStatus
    from parley.workspaces import service as workspaces
    from parley.workspaces.models import Workspace
    from support import customer_writes

    received = customer_writes(
        db,
        channel=ChannelKind.SMS,
        sender="+12025550999",
        text="secret order question",
        slug="other",
    )
    now = utc_now()
    with db.transaction() as session:
        other = session.scalar(select(Workspace).where(Workspace.slug == "other"))
        customer = session.get_one(Customer, received.customer_id)
        customer.first_name, customer.last_name = OTHER_NAME.split()
        twin = Customer(
            workspace_id=other.id, email="twin@elsewhere.example", created_at=now, updated_at=now
        )
        session.add(twin)
        session.flush()
        merge = merges.merge_customers(
            session,
            workspace_id=other.id,
            keep_id=customer.id,
            merge_id=twin.id,
            reason="same person",
        )
        canned = CannedReply(
            workspace_id=other.id,
            shortcut="elsewhere",
            title="Elsewhere",
            body=f"{OTHER_NAME} canned",
            created_at=now,
            updated_at=now,
        )
        session.add(canned)
        account = workspaces.add_channel_account(
            session,
            workspace_id=other.id,
            channel="sms",
            provider="twilio",
            address="+15550009999",
            secrets={"auth_token": "other-token"},
        )
        job = Job(
            workspace_id=other.id,
            kind="journeys.advance",
            payload={},
            due_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(job)
        held = Message(
            workspace_id=other.id,
            customer_id=customer.id,
            conversation_id=received.conversation_id,
            idempotency_key="held-elsewhere",
            message_type="dispatch",
            purpose="transactional",
            channel="sms",
            recipient="+12025550999",
            body=f"{OTHER_NAME}'s parcel",
            status=MessageStatus.HELD,
            created_at=now,
            status_updated_at=now,
        )
        session.add(held)
        request = PrivacyRequest(
            workspace_id=other.id,
            kind=RequestKind.ACCESS,
            reference="42",
            status=RequestStatus.DONE,
            export={"customers": [{"first_name": OTHER_NAME}]},
            received_at=now,
            completed_at=now,
        )
        session.add(request)
        session.flush()
        owner = session.scalar(
            select(Membership.user_id).where(Membership.workspace_id == other.id)
        )
        invite = Invite(
            workspace_id=other.id,
            token_hash="0" * 64,
            email="invited@elsewhere.example",
            role="agent",
            invited_by_id=owner,
            expires_at=now + timedelta(days=7),
            created_at=now,
        )
        session.add(invite)
        session.flush()
        return {
            "conversation": received.conversation_id,
            "customer": customer.id,
            "merge": merge.id,
            "canned": canned.id,
            "account": account.id,
            "job": job.id,
            "message": received.message_id,
            "held": held.id,
            "privacy_request": request.id,
            "user": owner,
            "invite": invite.id,
            "first": 0,
        }


def fill(path: str, kinds: tuple[str, ...], ids: dict[str, int]) -> str:
    values = iter(ids[kind] for kind in kinds)
    return PARAM.sub(lambda _m: str(next(values)), path)


def snapshot(db, workspace_slug: str) -> dict[str, list]:
    """Everything the other store has that a write could change."""
    from parley.customers.models import Customer, CustomerMerge
    from parley.inbox.models import CannedReply, Conversation, ConversationEvent
    from parley.jobs.models import Job
    from parley.messaging.models import Message
    from parley.workspaces.models import ChannelAccount, Workspace

    with db.transaction() as session:
        other_id = session.scalar(select(Workspace.id).where(Workspace.slug == workspace_slug))
        state = {}
        for model in (
            Customer,
            CustomerMerge,
            CannedReply,
            Conversation,
            ConversationEvent,
            Job,
            Message,
            ChannelAccount,
            Membership,
            Invite,
        ):
            columns = [c for c in model.__table__.columns if c.name != "secrets"]
            state[model.__tablename__] = [
                tuple(row)
                for row in session.execute(
                    select(*columns).where(model.workspace_id == other_id).order_by(model.id)
                )
            ]
        return state


def test_another_workspaces_ids_answer_404_with_none_of_its_data(app, db, elsewhere):
    before = snapshot(db, "other")
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        for method, path in id_routes(app):
            if path in NOT_ID_ROUTES:
                continue
            url = fill(path, ID_ROUTES[path], elsewhere)
            if method == "GET":
                answer = client.get(url, headers={"accept": "text/html"})
            else:
                answer = client.request(
                    method,
                    url,
                    data={
                        "csrf_token": csrf,
                        "body": "hello",
                        "text": "hello",
                        "reason": "x",
                        "other": str(elsewhere["customer"]),
                        "role": "agent",
                        "assignee": "me",
                        "until": "1h",
                        "shortcut": "x",
                        "title": "x",
                    },
                )
            assert answer.status_code == 404, f"{method} {url} answered {answer.status_code}"
            assert OTHER_NAME not in answer.text, f"{method} {url} leaked the other store's data"
            assert "secret order question" not in answer.text, f"{method} {url}"
    assert snapshot(db, "other") == before


TOO_BIG = "9" * 20
"""An id past a 64-bit integer: no row can have it, and the database cannot be asked for it."""


def test_an_id_too_big_for_the_database_is_404_on_every_id_route(app, db):
    audit_before = count(db, AuditEntry)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        for method, path in id_routes(app):
            if path in NOT_ID_ROUTES:
                continue
            url = PARAM.sub(TOO_BIG, path)
            if method == "GET":
                answer = client.get(url, headers={"accept": "text/html"})
            else:
                answer = client.request(method, url, data={"csrf_token": csrf, "body": "hello"})
            assert answer.status_code == 404, f"{method} {url} answered {answer.status_code}"
    assert count(db, AuditEntry) == audit_before + 1  # the sign-in
