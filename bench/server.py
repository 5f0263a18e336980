"""``parley serve`` exactly as shipped, plus one baseline route mounted by the bench.

Run: ``PARLEY_DATABASE_URL=... PARLEY_PORT=... python bench/server.py [--no-worker]``
(the arguments are ``parley serve``'s own; this runs parley's Typer CLI).

The baseline, ``POST /webhooks/bench-baseline/{workspace}``, is the least a durable webhook
receiver can do, in the same process, on the same uvicorn server, behind the same
middleware as parley's webhooks (under ``/webhooks/``: signed, so no CSRF token) and on the
same ``parley.db.Database`` engine (WAL + ``BEGIN IMMEDIATE`` on SQLite, the same pool on
PostgreSQL): read the body, verify the Shopify HMAC with parley's own
``signature.verify``, insert one row (key + raw body, ON CONFLICT DO NOTHING on the
delivery key, as parley dedupes) with a prepared Core statement in one transaction on a
worker thread (``engine.begin()``, so SQLite still gets ``BEGIN IMMEDIATE``), commit,
answer JSON. The workspace's secret is read once and cached: a minimal receiver would.

A second baseline, ``POST /webhooks/bench-baseline-grouped/{workspace}``, does the same
through parley's own group commit (``parley.db.group_commit``, which parley's Shopify
route uses): the verification in a writer thread, the insert in a transaction shared with
whatever else is queued. It shows how much of parley's figure that sharing buys, so the
plain baseline (one transaction per delivery) is not read as a like-for-like rival.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from benchkit import BASELINE_TABLE, baseline_metadata
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import parley.http.app as app_module
from parley.db.group_commit import group_commit
from parley.integrations.shopify import signature
from parley.workspaces.models import Workspace

_TABLE = baseline_metadata().tables[BASELINE_TABLE]
# Built once; ON CONFLICT DO NOTHING on the delivery key, as parley dedupes deliveries.
_INSERT = sqlite_insert(_TABLE).on_conflict_do_nothing(index_elements=["workspace", "delivery_key"])
_INSERT_PG = pg_insert(_TABLE).on_conflict_do_nothing(index_elements=["workspace", "delivery_key"])
_secrets: dict[str, list[str]] = {}
_secrets_lock = threading.Lock()


def _secrets_for(db: Any, slug: str) -> list[str]:
    cached = _secrets.get(slug)
    if cached is not None:
        return cached
    with _secrets_lock, db.transaction() as session:
        secret = session.scalar(select(Workspace.shopify_secret).where(Workspace.slug == slug))
        _secrets[slug] = [secret] if secret else []
    return _secrets[slug]


def _row(db: Any, slug: str, hmac_header: str | None, key: str | None, body: bytes) -> Any:
    """The row to insert, or the status refusing it."""
    if not signature.verify(body, hmac_header, _secrets_for(db, slug)):
        return 401
    if not key:
        return 400
    return {
        "workspace": slug,
        "delivery_key": key,
        "body": body.decode("utf-8"),
        "received_at": datetime.now(UTC),
    }


def _insert(db: Any, connection: Any, row: dict[str, Any]) -> int:
    connection.execute(_INSERT_PG if db.is_postgres else _INSERT, row)
    return 200


def _store(db: Any, slug: str, hmac_header: str | None, key: str | None, body: bytes) -> int:
    row = _row(db, slug, hmac_header, key, body)
    if isinstance(row, int):
        return row
    with db.engine.begin() as connection:  # fires parley's BEGIN IMMEDIATE hook on SQLite
        return _insert(db, connection, row)


def _refused(status: int) -> JSONResponse:
    return JSONResponse({"error": status}, status_code=status)


async def baseline(request: Request) -> JSONResponse:
    body = await request.body()
    headers = request.headers
    status = await run_in_threadpool(
        _store,
        request.app.state.db,
        request.path_params["workspace"],
        headers.get("x-shopify-hmac-sha256"),
        headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id"),
        body,
    )
    if status != 200:
        return _refused(status)
    return JSONResponse({"status": "accepted"})


async def grouped_baseline(request: Request) -> JSONResponse:
    body = await request.body()
    headers = request.headers
    db = request.app.state.db
    slug = request.path_params["workspace"]
    hmac_header = headers.get("x-shopify-hmac-sha256")
    key = headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id")

    def write(session: Any, row: Any) -> int:
        return row if isinstance(row, int) else _insert(db, session.connection(), row)

    status = await group_commit(db).run(lambda: _row(db, slug, hmac_header, key, body), write)
    if status != 200:
        return _refused(status)
    return JSONResponse({"status": "accepted"})


_create_app = app_module.create_app


def create_app_with_baseline(*args: Any, **kwargs: Any) -> Any:
    app = _create_app(*args, **kwargs)
    app.router.routes += [
        Route("/webhooks/bench-baseline/{workspace}", baseline, methods=["POST"]),
        Route("/webhooks/bench-baseline-grouped/{workspace}", grouped_baseline, methods=["POST"]),
    ]
    return app


def apply_experiments(names: str) -> None:
    """What-if patches, inside this process only, to test a proposed change in ``src/``
    before anyone makes it. Off unless ``BENCH_EXPERIMENT`` names one; never used for the
    figures the benches report.

    - ``sqlite-single-writer``: SQLite connection pool of one (no overflow), so requests
      queue for the one writer on the pool's condition variable instead of sleeping in
      SQLite's busy handler.
    - ``pg-writers-N``: N group-commit writer threads on PostgreSQL.
    """
    for name in names.split(","):
        if name.startswith("pg-writers-"):
            import parley.db.group_commit as group_commit_module

            group_commit_module.POSTGRES_WRITERS = int(name.removeprefix("pg-writers-"))
    if "sqlite-single-writer" in names.split(","):
        import parley.db.engine as engine_module

        original = engine_module._sqlite_engine

        def single_writer(url: str, **kwargs: Any) -> Any:
            kwargs.update(pool_size=1, max_overflow=0)
            return original(url, **kwargs)

        engine_module._sqlite_engine = single_writer


# At import, not in main(): ``serve --workers N`` spawns its processes, and each imports
# this script as ``__mp_main__`` before building its app (``app_from_environment`` calls
# ``create_app`` through the module), so every process mounts the baseline routes.
apply_experiments(os.environ.get("BENCH_EXPERIMENT", ""))
app_module.create_app = create_app_with_baseline


def main() -> None:
    from parley.cli import app as cli

    cli(["serve", *sys.argv[1:]], prog_name="parley")


if __name__ == "__main__":
    main()
