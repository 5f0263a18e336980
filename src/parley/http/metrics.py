"""``GET /metrics``: the job table's backlog and the alerts, for Prometheus to scrape.

The figures are read from the database at each scrape, not counted in the process, so
any web process answers for the whole deployment, and answers while every worker is down
(the case the alerts watch, itself a job, cannot report). The exposition is
``prometheus_client``'s, so names, labels and escaping follow the format exactly.

Off unless ``PARLEY_METRICS_TOKEN`` is set: the web server faces the internet (it takes
the platforms' webhooks), and a store's backlog is not for strangers. The scraper sends
the token as a bearer token (Prometheus' ``authorization`` setting); a wrong one is 401
and logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.alerts import rules
from parley.alerts.watch import firing
from parley.clock import utc_now
from parley.db import Database
from parley.http.web.security import client_ip
from parley.jobs.backlog import Backlog, read_backlog
from parley.runtime import thresholds

log = logging.getLogger(__name__)


class Snapshot(Collector):
    """The families of one scrape, read before they are written out."""

    def __init__(self, backlog: Backlog, firing: set[str]) -> None:
        self.backlog = backlog
        self.firing = firing

    def collect(self) -> Iterable[Metric]:
        backlog, now = self.backlog, self.backlog.at
        due = GaugeMetricFamily(
            "parley_jobs_due", "Jobs due now and not yet claimed, by lane.", labels=["lane"]
        )
        late = GaugeMetricFamily(
            "parley_jobs_late_seconds",
            "How long the oldest due job of the lane has waited past its time.",
            labels=["lane"],
        )
        stores = GaugeMetricFamily(
            "parley_jobs_due_stores", "Stores with jobs due now, by lane.", labels=["lane"]
        )
        for lane, found in backlog.lanes.items():
            due.add_metric([lane], found.due)
            late.add_metric([lane], found.late_seconds(now))
            stores.add_metric([lane], found.stores)
        yield from (due, late, stores)
        yield GaugeMetricFamily(
            "parley_jobs_lease_expired",
            "Jobs marked running whose worker's lease ran out (the worker died).",
            value=backlog.lease_expired,
        )
        dead = GaugeMetricFamily(
            "parley_dead_letter_jobs", "Jobs in the dead letter, by kind.", labels=["kind"]
        )
        for kind, count in sorted(backlog.dead_letter.items()):
            dead.add_metric([kind], count)
        yield dead
        alerts = GaugeMetricFamily(
            "parley_alert_firing",
            "1 while the alert fires, as the alerts watch last found it.",
            labels=["alert"],
        )
        for name in rules.names():
            alerts.add_metric([name], 1 if name in self.firing else 0)
        yield alerts


def read_snapshot(db: Database, *, dead_since: timedelta) -> Snapshot:
    """The backlog and the alerts' state now, in one short transaction."""
    with db.transaction() as session:
        backlog = read_backlog(session, now=utc_now(), dead_since=dead_since)
        now_firing = {alert.name for alert in firing(session)}
    return Snapshot(backlog, now_firing)


async def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    token = settings.metrics_token
    if token is None:
        return JSONResponse(
            {"error": "metrics are off: set PARLEY_METRICS_TOKEN to turn them on"},
            status_code=404,
        )
    given = request.headers.get("authorization", "")
    scheme, _, credentials = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        log.warning(
            "GET /metrics refused: %s bearer token, from %s",
            "a wrong" if given else "no",
            client_ip(request),
        )
        return JSONResponse(
            {"error": "a valid bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="parley metrics"'},
        )
    snapshot = await run_in_threadpool(
        read_snapshot,
        request.app.state.db,
        dead_since=thresholds(settings).dead_letter_window,
    )
    return Response(generate_latest(snapshot), media_type=CONTENT_TYPE_LATEST)
