"""What every ``parley`` command checks before its work: that the settings can be read and
that the database is this code's, or it exits with one line saying why, not a traceback.

The lines name a setting and what is wrong with it, never its value: a URL or a key may
be secret.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, NoReturn

import typer
from pydantic import ValidationError

from parley.settings import Settings, get_settings

if TYPE_CHECKING:
    from parley.db import Database


def settings_or_exit(**overrides: object) -> Settings:
    """The ``PARLEY_*`` settings, with ``overrides`` on top; exits 2 (a usage error) with
    one line for each that is malformed."""
    try:
        return get_settings(**overrides)
    except ValidationError as exc:
        _refuse_settings(f"{_setting_name(error['loc'])}: {error['msg']}" for error in exc.errors())


def require_schema(settings: Settings) -> None:
    """Exit 1 with the reason, in one line, unless the database is reachable and migrated
    to this code's head."""
    from parley.db.migrate import schema_problem

    problem = schema_problem(settings.database_url)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1)


SANDBOX_HOST = "127.0.0.1"
"""Where the sandbox's SMTP server and nameserver listen (:mod:`parley.http.app`)."""


def require_sandbox_ports(settings: Settings) -> None:
    """Exit 1 with one line unless the sandbox's SMTP port (TCP) and nameserver port
    (UDP, when the sending domain is checked) are free: taken, say by a first ``parley
    demo``, the app would fail at start-up with a traceback, after the worker started."""
    checks = [("SMTP server", socket.SOCK_STREAM, settings.sandbox_smtp_port)]
    if settings.sending_domain() is not None:
        port = settings.sandbox_dns_port or settings.sandbox_smtp_port
        checks.append(("nameserver", socket.SOCK_DGRAM, port))
    for name, kind, port in checks:
        with socket.socket(socket.AF_INET, kind) as probe:
            # As asyncio binds: a port left in TIME_WAIT by a stopped demo is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((SANDBOX_HOST, port))
            except OSError:
                setting = "SANDBOX_DNS_PORT" if name == "nameserver" else "SANDBOX_SMTP_PORT"
                typer.echo(
                    f"error: the sandbox's {name} cannot listen on {SANDBOX_HOST}:{port}, it "
                    f"is taken (another parley demo?): set PARLEY_{setting} to a free port",
                    err=True,
                )
                raise typer.Exit(1) from None


def migrate_or_exit(settings: Settings) -> None:
    """Bring the database up to date, or exit 1 with one line saying why it could not be:
    unreachable, migrated by a later version of parley, or refused by the database."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError, OperationalError

    from parley.db.engine import describe
    from parley.db.migrate import migrate, schema_problem

    try:
        migrate(settings.database_url)
    except OperationalError as exc:  # no connection: the server, the file, the login
        _refuse_database(f"cannot reach the database at {describe(settings.database_url)}", exc)
    except DBAPIError as exc:  # reached, but a statement was refused (rights, say)
        _refuse_database(f"migrating the database at {describe(settings.database_url)}", exc)
    except CommandError as exc:  # a revision this code does not have
        typer.echo(f"error: {schema_problem(settings.database_url) or exc}", err=True)
        raise typer.Exit(1) from exc


def _refuse_database(what: str, exc: BaseException) -> NoReturn:
    cause = getattr(exc, "orig", None) or exc
    reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    typer.echo(f"error: {what}: {reason}", err=True)
    raise typer.Exit(1) from exc


def migrated_database(settings: Settings) -> Database:
    """The database, once :func:`require_schema` found it this code's: a command run
    against a database never migrated, or one left behind by a deploy, says so instead
    of failing on its first query."""
    from parley.db import Database

    require_schema(settings)
    return Database(settings.database_url)


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """The variable a validation error's location names (none for the settings as a
    whole)."""
    return f"PARLEY_{str(loc[0]).upper()}" if loc else "the PARLEY_* settings"


def _refuse_settings(problems: Iterable[str]) -> NoReturn:
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(2)
