"""What every ``parley`` command checks before its work: that the settings can be read and
that the database is this code's, or it exits with one line saying why, not a traceback.

The lines name a setting and what is wrong with it, never its value: a URL or a key may
be secret.
"""

from __future__ import annotations

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
