"""The ``parley`` command: serve, worker, migrate, demo, simulate, workspace, jobs,
marketing, providers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets as secrets_module
import signal
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn

from parley.assistant.cli import assistant_app
from parley.errors import Conflict, Invalid, NotFound
from parley.http.processes import Supervisor, spreads_connections
from parley.preflight import (
    migrate_or_exit,
    migrated_database,
    require_sandbox_ports,
    require_schema,
    settings_or_exit,
)
from parley.settings import Settings
from parley.workspaces.credentials import CHANNEL_PROVIDERS

if TYPE_CHECKING:
    from parley.channels.base import ChannelKind, SendingAccount
    from parley.channels.registry import ProviderCheck
    from parley.jobs.worker import Worker

log = logging.getLogger(__name__)
app = typer.Typer(help="parley: customer communication for ecommerce stores.", no_args_is_help=True)
workspace_app = typer.Typer(help="Manage workspaces (stores).", no_args_is_help=True)
jobs_app = typer.Typer(help="Look into the job queue.", no_args_is_help=True)
user_app = typer.Typer(help="Manage the people who sign in.", no_args_is_help=True)
providers_app = typer.Typer(help="The providers parley sends through.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
app.add_typer(providers_app, name="providers")
app.add_typer(user_app, name="user")
marketing_app = typer.Typer(
    help="A store's marketing in flight: pause, resume, its rate, what waits.",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(marketing_app, name="marketing")
app.add_typer(assistant_app, name="assistant")


def _serve(settings: Settings) -> None:
    from parley.http.app import create_app
    from parley.runtime import tune_garbage_collector

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    tune_garbage_collector()
    uvicorn.Server(config).run()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: PARLEY_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: PARLEY_PORT")] = None,
    worker: Annotated[bool, typer.Option(help="Run the embedded worker")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Server processes on this host")] = 1,
) -> None:
    """Run the web server (webhooks, API) with an embedded worker."""
    overrides: dict[str, object] = {"embedded_worker": worker}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = settings_or_exit(**overrides)
    if workers > 1 and settings.sandbox:
        typer.echo("error: the sandbox runs in one process; use --workers 1", err=True)
        raise typer.Exit(1)
    if settings.sandbox:
        require_sandbox_ports(settings)
    if settings.is_sqlite and settings.migrate_on_start:
        # Here, not only in the app's start-up, where a database this code cannot take
        # (one a newer parley migrated, a file it cannot open) ends in a traceback.
        migrate_or_exit(settings)
    else:
        require_schema(settings)
    if workers == 1:
        _serve(settings)
        return
    _serve_processes(settings, workers)


def _serve_processes(settings: Settings, processes: int) -> None:
    """Several server processes sharing one port and one database.

    The parent has migrated (:func:`serve`); the children then start from the environment
    without migrating, so they never race each other over the schema. On Linux each process
    listens on a socket of its own, so the kernel spreads connections that open at once
    (:mod:`parley.http.processes`).
    """
    os.environ.update(
        PARLEY_HOST=settings.host,
        PARLEY_PORT=str(settings.port),
        PARLEY_EMBEDDED_WORKER=str(settings.embedded_worker).lower(),
        PARLEY_MIGRATE_ON_START="false",
    )
    options: dict[str, Any] = {
        "factory": True,
        "workers": processes,
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    app_path = "parley.http.app:app_from_environment"
    if not spreads_connections():
        uvicorn.run(app_path, **options)  # one socket shared by the processes
        return
    supervisor = Supervisor(uvicorn.Config(app_path, **options))
    try:
        supervisor.run()
    except OSError as exc:  # the port: taken, or the address is not this host's
        typer.echo(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if supervisor.failed:
        raise typer.Exit(1)


@app.command()
def worker(
    drain: Annotated[bool, typer.Option(help="Exit once nothing is due")] = False,
) -> None:
    """Run a worker process; start as many as you like against one database."""
    from parley.runtime import build_runtime, tune_garbage_collector

    settings = settings_or_exit()
    if settings.sandbox:
        settings = settings.pointed_at_sandbox()
    require_schema(settings)

    async def main() -> None:
        runtime = build_runtime(settings)
        job_worker = runtime.worker()
        tune_garbage_collector()
        try:
            with _stopped_by_signals(job_worker):
                if drain:
                    handled = await job_worker.run_until_idle()
                    typer.echo(f"drained {handled} jobs")
                else:
                    await job_worker.run_forever()
        finally:
            await runtime.aclose()

    asyncio.run(main())


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _stopped_by_signals(job_worker: Worker) -> Iterator[None]:
    """SIGTERM or SIGINT stops the worker as ``parley serve`` stops its own.

    It claims nothing more, and the rounds in flight finish: their sends (each bounded by
    the provider timeout) are answered and the answers recorded. Killed instead, a deploy
    would leave its jobs ``running`` and its messages ``sending``, and the worker that
    takes them back after the lease could only hold them for review, maybe delivered. A
    second signal ends the process at once, by that signal.
    """
    loop = asyncio.get_running_loop()

    def now(signum: signal.Signals) -> None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def gracefully(signum: signal.Signals) -> None:
        log.warning(
            "%s: finishing the jobs in hand, then stopping (%s again to stop now)",
            signum.name,
            signum.name,
        )
        job_worker.stop()
        for each in STOP_SIGNALS:
            loop.add_signal_handler(each, now, each)

    for each in STOP_SIGNALS:
        loop.add_signal_handler(each, gracefully, each)
    try:
        yield
    finally:
        for each in STOP_SIGNALS:
            loop.remove_signal_handler(each)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    migrate_or_exit(settings_or_exit())
    typer.echo("database is up to date")


@app.command()
def demo(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run parley with the demo store and the sandbox providers."""
    from parley.assistant.classifier import load_classifier
    from parley.db import Database
    from parley.db.engine import describe
    from parley.demo.seed import DEMO_AGENT_EMAIL, DEMO_NAME, seed_demo_store

    overrides: dict[str, object] = {"sandbox": True}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = settings_or_exit(**overrides)
    require_sandbox_ports(settings)
    migrate_or_exit(settings)
    db = Database(settings.database_url)
    with db.transaction() as session:
        seed_demo_store(session, settings)
    db.dispose()
    typer.echo("Preparing the assistant's model (trained on the first start only)...")
    load_classifier(settings.assistant_model_dir)
    base = settings.local_url()
    typer.echo(
        f"""
parley demo: {DEMO_NAME} (workspace "demo") on {describe(settings.database_url)}

  Agents' inbox            {base}/inbox
                           sign in as {settings.demo_admin_email} (admin)
                           or {DEMO_AGENT_EMAIL} (agent)
                           password: {settings.demo_admin_password}
  Sandbox phone + mailbox  {base}/sandbox/
  Storefront with chat     {base}/demo/store
  Captured messages (JSON) {base}/sandbox/api/messages
  Shopify webhooks         POST {base}/webhooks/shopify/demo
                           (secret: PARLEY_DEMO_SHOPIFY_SECRET={settings.demo_shopify_secret})
  Customer messages        {base}/webhooks/{{whatsapp,instagram,twilio,email}}/demo
                           (PARLEY_DEMO_META_APP_SECRET, PARLEY_DEMO_META_VERIFY_TOKEN,
                            PARLEY_DEMO_TWILIO_AUTH_TOKEN, PARLEY_DEMO_MAILGUN_SIGNING_KEY)
  API                      {base}/api/v1  (Authorization: Bearer {settings.demo_api_key})
  Health                   {base}/healthz

Watch messages arrive: in another terminal run
  .venv/bin/parley simulate --url {base}
"""
    )
    _serve(settings)


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="Where parley runs")] = "http://127.0.0.1:8000",
    workspace: Annotated[str, typer.Option()] = "demo",
    secret: Annotated[str | None, typer.Option(help="Default: PARLEY_DEMO_SHOPIFY_SECRET")] = None,
    orders: Annotated[int, typer.Option(help="Orders to play through")] = 4,
    delay: Annotated[float, typer.Option(help="Seconds between deliveries")] = 1.0,
    duplicates: Annotated[int, typer.Option(help="Send each delivery this many times")] = 1,
) -> None:
    """Post correctly signed Shopify webhooks (order placed through delivered) to parley."""
    from parley.demo.simulate import SimulationStopped, run_simulation

    settings = settings_or_exit()
    try:
        run_simulation(
            base_url=url.rstrip("/"),
            workspace=workspace,
            secret=secret or settings.demo_shopify_secret,
            orders=orders,
            delay=delay,
            duplicates=duplicates,
            echo=typer.echo,
        )
    except SimulationStopped as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@workspace_app.command("create")
def workspace_create(
    slug: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    shopify_secret: Annotated[str | None, typer.Option()] = None,
    timezone: Annotated[str, typer.Option()] = "UTC",
) -> None:
    """Create a workspace; prints its new API key once."""
    from parley.accounts.service import audit
    from parley.clock import utc_now
    from parley.workspaces.service import create_workspace

    settings = settings_or_exit()
    api_key = secrets_module.token_urlsafe(32)
    db = migrated_database(settings)
    try:
        with db.transaction() as session:
            created = create_workspace(
                session,
                slug=slug,
                name=name,
                timezone=timezone,
                shopify_secret=shopify_secret,
                api_key=api_key,
            )
            audit(
                session,
                workspace_id=created.id,
                action="store_created",
                now=utc_now(),
                actor_email="parley workspace create",
                detail={"slug": slug, "api_key_created": True},
            )
    except Invalid as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except Conflict as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(f"workspace {slug!r} created; API key (shown once): {api_key}")


@user_app.command("create")
def user_create(
    workspace: Annotated[str, typer.Option(help="The workspace's slug")],
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()] = "",
    role: Annotated[str, typer.Option(help="admin or agent")] = "admin",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="PARLEY_NEW_USER_PASSWORD",
            help="Prompted for when not given (or set PARLEY_NEW_USER_PASSWORD)",
        ),
    ] = "",
) -> None:
    """Create someone who signs in to a workspace's inbox: the first admin, typically."""
    from parley.accounts import service as accounts
    from parley.clock import utc_now
    from parley.errors import ParleyError
    from parley.workspaces.service import get_workspace

    settings = settings_or_exit()
    db = migrated_database(settings)
    try:
        with db.transaction() as session:
            found = get_workspace(session, slug=workspace)
            user = accounts.create_user(
                session, email=email, name=name, password=password, now=utc_now()
            )
            accounts.add_member(
                session, workspace_id=found.id, user_id=user.id, role=role, now=utc_now()
            )
            accounts.audit(
                session,
                workspace_id=found.id,
                action="user_created",
                now=utc_now(),
                actor_email="parley user create",
                detail={"email": user.email, "role": role},
            )
            address = user.email
    except ParleyError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(f"{role} {address} can now sign in to {workspace!r} at /login")


@workspace_app.command("connect")
def workspace_connect(
    slug: Annotated[str, typer.Option(help="The workspace")],
    provider: Annotated[str, typer.Option(help=", ".join(CHANNEL_PROVIDERS))],
    address: Annotated[
        str,
        typer.Option(
            help="WhatsApp phone_number_id, Twilio number (E.164), Instagram account id, "
            "or the inbound email address"
        ),
    ],
    secret: Annotated[
        list[str], typer.Option(help="name=value, e.g. app_secret=… (repeat for each)")
    ],
) -> None:
    """Connect a provider account so its webhooks reach this workspace; with its sending
    fields (a WhatsApp access_token, a Twilio account_sid, an Instagram access_token) the
    store's messages on that channel go from it."""
    from parley.workspaces import service as workspaces

    if provider not in CHANNEL_PROVIDERS:
        typer.echo(f"error: provider must be one of {', '.join(CHANNEL_PROVIDERS)}", err=True)
        raise typer.Exit(2)
    channel, needed = CHANNEL_PROVIDERS[provider]
    given = dict(item.partition("=")[::2] for item in secret)
    missing = [name for name in needed if not given.get(name)]
    if missing:
        typer.echo(f"error: {provider} needs --secret {'=… --secret '.join(missing)}=…", err=True)
        raise typer.Exit(2)
    try:
        values = workspaces.account_secrets(provider, given)
    except Invalid as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    db = migrated_database(settings_or_exit())
    try:
        with db.transaction() as session:
            workspace = workspaces.get_workspace(session, slug=slug)
            account = workspaces.add_channel_account(
                session,
                workspace_id=workspace.id,
                channel=channel,
                provider=provider,
                address=address,
                secrets=values,
            )
            address = account.address
    except Invalid as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except (Conflict, NotFound) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(
        f"{provider} {address} connected to {slug!r}: POST /webhooks/{_route(provider)}/{slug}"
    )


def _sending_accounts(settings: Settings, slug: str) -> Mapping[ChannelKind, SendingAccount]:
    """The store's own accounts it sends from, by channel (exits 1 for an unknown store)."""
    from parley.messaging.senders import sending_accounts
    from parley.workspaces import service as workspaces

    db = migrated_database(settings)
    try:
        with db.transaction() as session:
            store = workspaces.get_workspace(session, slug=slug)
            return sending_accounts(session, [store.id])[store.id]
    except NotFound as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


def _check_email_sender(settings: Settings, slug: str) -> ProviderCheck | None:
    """Read the store's own email domain now and keep the reading, as "Check now" on
    Settings → Channels does; None when the store sends from the deployment's address."""
    from parley.channels.base import ChannelError, ChannelKind
    from parley.channels.email_smtp.domain import check_sending_domain
    from parley.channels.registry import ProviderCheck
    from parley.clock import utc_now
    from parley.messaging import email_sender, sending_domain
    from parley.workspaces import service as workspaces

    db = migrated_database(settings)
    try:
        with db.transaction() as session:
            sender = email_sender.EmailSender.of(
                workspaces.get_workspace(session, slug=slug).settings
            )
        if sender is None:
            return None
        try:
            found = asyncio.run(check_sending_domain(settings, sender.domain, sender.dkim_selector))
        except ChannelError as exc:
            return ProviderCheck(ChannelKind.EMAIL, False, f"{sender.address}: {exc.reason}")
        with db.transaction() as session:
            sending_domain.record(session, found, now=utc_now())
            reading = email_sender.readings(session, [sender.domain]).get(sender.domain)
            problems = email_sender.problems(sender, reading, now=utc_now())
    finally:
        db.dispose()
    return ProviderCheck(ChannelKind.EMAIL, problems == [], email_sender.describe(sender, problems))


@workspace_app.command("email-sender")
def workspace_email_sender(
    slug: Annotated[str, typer.Option(help="The workspace")],
    address: Annotated[
        str | None, typer.Option(help="The address on the store's own domain to send from")
    ] = None,
    dkim_selector: Annotated[
        str, typer.Option(help="The selector the relay signs that domain with")
    ] = "",
    remove: Annotated[bool, typer.Option(help="Send from the deployment's address again")] = False,
) -> None:
    """Send the store's email from its own address once its domain shows the record
    printed here and is set up for sending (check it with `parley providers check
    --workspace`); until then it goes from the deployment's."""
    from parley.messaging import email_sender
    from parley.workspaces import service as workspaces

    if (address is None) == (not remove):
        typer.echo("error: give --address, or --remove", err=True)
        raise typer.Exit(2)
    db = migrated_database(settings_or_exit())
    try:
        with db.transaction() as session:
            store = workspaces.get_workspace(session, slug=slug)
            if remove:
                email_sender.clear(store)
                typer.echo(f"{slug!r} sends email from the deployment's address")
                return
            sender = email_sender.save(store, address or "", dkim_selector)
    except NotFound as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    typer.echo(
        f"{slug!r} sends email from {sender.address} once {sender.domain} has these records:\n"
        f'  {sender.domain} TXT "{sender.verification_record}"\n'
        f"  {sender.domain} TXT v=spf1 … (allowing your relay)\n"
        f"  {sender.dkim_selector or '<EMAIL_DKIM_SELECTOR>'}._domainkey.{sender.domain}: "
        "the DKIM key your relay gives\n"
        f'  _dmarc.{sender.domain} TXT "v=DMARC1; p=none" (or stricter)'
    )


def _route(provider: str) -> str:
    return {"whatsapp_cloud": "whatsapp", "mailgun": "email"}.get(provider, provider)


@jobs_app.command("status")
def jobs_status() -> None:
    """How many jobs are in each state."""
    from parley.jobs.queue import count_by_status

    db = migrated_database(settings_or_exit())
    with db.transaction() as session:
        typer.echo(json.dumps(count_by_status(session), indent=2, sort_keys=True))
    db.dispose()


@jobs_app.command("backlog")
def jobs_backlog() -> None:
    """What is due and how late, per lane; the dead letter; which alerts fire, and why."""
    from parley.alerts.watch import firing, store_names
    from parley.clock import utc_now
    from parley.jobs.backlog import read_backlog
    from parley.runtime import thresholds

    settings = settings_or_exit()
    db = migrated_database(settings)
    now = utc_now()
    with db.transaction() as session:
        backlog = read_backlog(session, now=now, dead_since=thresholds(settings).dead_letter_window)
        slugs = store_names(session, backlog)
        shown = {
            "lanes": {
                lane: {
                    "due": found.due,
                    "stores": found.stores,
                    "late_seconds": round(found.late_seconds(now), 1),
                    "longest_waiting_store": slugs.get(found.longest_waiting_store)
                    if found.longest_waiting_store is not None
                    else None,
                }
                for lane, found in backlog.lanes.items()
            },
            "lease_expired": backlog.lease_expired,
            "dead_letter": backlog.dead_letter,
            "alerts": {
                alert.name: {
                    "firing_since": alert.firing_since and alert.firing_since.isoformat(),
                    "summary": alert.summary,
                }
                for alert in firing(session)
            },
        }
    db.dispose()
    typer.echo(json.dumps(shown, indent=2, sort_keys=True))


@jobs_app.command("sweep")
def jobs_sweep() -> None:
    """Delete what is past its retention now (workers also do it every 10 minutes)."""
    from parley.housekeeping import sweep
    from parley.runtime import retention

    settings = settings_or_exit()
    db = migrated_database(settings)
    swept = sweep(db, retention(settings))
    typer.echo(f"deleted {swept.deliveries} raw deliveries and {swept.jobs} finished jobs")
    db.dispose()


@jobs_app.command("dead")
def jobs_dead() -> None:
    """The dead letter: jobs that used up their attempts or failed for good, with why."""
    from parley.jobs.queue import list_dead

    db = migrated_database(settings_or_exit())
    with db.transaction() as session:
        for job in list_dead(session):
            typer.echo(f"{job.id} {job.kind} {job.status} attempts={job.attempts} {job.last_error}")
    db.dispose()


@jobs_app.command("retry")
def jobs_retry(
    job_ids: Annotated[list[int] | None, typer.Argument(help="Jobs of the dead letter.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every job of the dead letter.")] = False,
) -> None:
    """Re-drive dead-letter jobs: due now, with a fresh set of attempts.

    A journey send that had failed is sent anew as a message of its own, if the order
    and the journey still call for it; the failed one stays on record.
    """
    from parley.jobs.queue import list_dead, redrive

    if bool(job_ids) == every:
        raise typer.BadParameter("name the jobs to retry, or pass --all")
    db = migrated_database(settings_or_exit())
    redriven, refused = 0, 0
    with db.transaction() as session:
        for job_id in job_ids or [job.id for job in list_dead(session, limit=None)]:
            try:
                job = redrive(session, job_id)
            except (Conflict, NotFound) as exc:
                typer.echo(f"error: {exc.message}", err=True)
                refused += 1
                continue
            redriven += 1
            typer.echo(f"{job.id} {job.kind} re-driven (re-drive {job.payload['redrive']})")
    db.dispose()
    typer.echo(f"{redriven} jobs re-driven, due now: a running worker takes them")
    if refused:
        raise typer.Exit(1)


WorkspaceOption = Annotated[str, typer.Option(help="The workspace's slug")]


def _marketing(workspace: str, command: str, change: Callable[..., object] | None = None) -> None:
    """Apply ``change(session, workspace, actor, now)`` to the store's marketing controls,
    if given, and print them as JSON; a refusal is printed and exits 1."""
    from parley.clock import utc_now
    from parley.errors import ParleyError
    from parley.messaging.marketing_controls import Actor, controls_of
    from parley.workspaces.service import get_workspace

    db = migrated_database(settings_or_exit())
    try:
        with db.transaction() as session:
            found = get_workspace(session, slug=workspace)
            if change is not None:
                change(session, found, Actor(f"parley marketing {command}"), utc_now())
            shown = controls_of(session, found).as_json()
    except ParleyError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(json.dumps(shown, indent=2, sort_keys=True))


@marketing_app.command("status")
def marketing_status(workspace: WorkspaceOption) -> None:
    """Whether the store's marketing is paused, its rate, and what waits, for what."""
    _marketing(workspace, "status")


def _switch(workspace: str, *, paused: bool) -> None:
    from parley.messaging.marketing_controls import set_paused

    _marketing(
        workspace,
        "pause" if paused else "resume",
        lambda s, w, actor, now: set_paused(s, w, paused=paused, actor=actor, now=now),
    )


@marketing_app.command("pause")
def marketing_pause(workspace: WorkspaceOption) -> None:
    """Hold every marketing send of the store from the next batch; order updates go."""
    _switch(workspace, paused=True)


@marketing_app.command("resume")
def marketing_resume(workspace: WorkspaceOption) -> None:
    """Let the held marketing go, each send decided in the next batch."""
    _switch(workspace, paused=False)


@marketing_app.command("rate")
def marketing_rate(
    workspace: WorkspaceOption,
    per_hour: Annotated[str, typer.Argument(help="Messages an hour at most; 0 for no limit")],
) -> None:
    """Set or lift the store's marketing rate; the sends waiting for it are re-planned."""
    from parley.messaging.marketing_controls import set_rate
    from parley.messaging.marketing_rate import MarketingRate

    try:
        rate = MarketingRate.parse(per_hour)
    except Invalid as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    _marketing(
        workspace,
        "rate",
        lambda s, w, actor, now: set_rate(s, w, rate, actor=actor, now=now),
    )


@providers_app.command("check")
def providers_check(
    channels: Annotated[
        list[str] | None,
        typer.Argument(help="Channels to check: email, sms, whatsapp, instagram, webchat."),
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option(help="Check this store's own sending accounts instead of the deployment's"),
    ] = None,
) -> None:
    """Ask each provider whether it takes the settings (credentials, sender), sending
    nothing; with --workspace, the store's own accounts it sends from. With
    PARLEY_SANDBOX=1 the providers are the running server's sandbox."""
    from parley.channels.base import ChannelKind
    from parley.channels.registry import check_accounts, check_providers

    known = {str(kind) for kind in ChannelKind}
    unknown = sorted(set(channels or ()) - known)
    if unknown:
        raise typer.BadParameter(f"unknown channel {', '.join(unknown)}: one of {sorted(known)}")
    wanted = [ChannelKind(c) for c in channels or ()]
    settings = settings_or_exit()
    if settings.sandbox:
        settings = settings.pointed_at_sandbox()
    if workspace is None:
        checks = asyncio.run(check_providers(settings, wanted))
    else:
        # A store's own email address has no credentials: its domain is read instead.
        own = {
            kind: account
            for kind, account in _sending_accounts(settings, workspace).items()
            if (not wanted or kind in wanted) and not account.is_address_only
        }
        email = (
            _check_email_sender(settings, workspace)
            if not wanted or ChannelKind.EMAIL in wanted
            else None
        )
        if not own and email is None:
            typer.echo(f"{workspace!r} sends from the deployment's accounts on these channels")
            return
        checks = asyncio.run(check_accounts(settings, own)) if own else []
        checks += [email] if email is not None else []
    for check in checks:
        typer.echo(f"{check.channel:<10} {'ok' if check.is_ok else 'FAILED':<7} {check.said}")
    if not all(check.is_ok for check in checks):
        raise typer.Exit(1)
