"""Domain errors, mapped to HTTP statuses at the edge (``http/app.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ParleyError(Exception):
    """Base of every error the domain raises on purpose."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ParleyError):
    """The thing does not exist in this workspace (or the caller may not know it does)."""

    status_code = 404


class PermissionDenied(ParleyError):
    """The caller is known but not allowed to do this."""

    status_code = 403


class Unauthenticated(ParleyError):
    """The request did not prove who sent it (bad signature, missing key)."""

    status_code = 401


class Conflict(ParleyError):
    """The request clashes with the current state (already sent, key reused...)."""

    status_code = 409


class Invalid(ParleyError):
    """The input is malformed or breaks a rule; the message says which."""

    status_code = 422


class TryAgain(ParleyError):
    """Nothing was kept this time, and a retry will succeed: the sender should resend."""

    status_code = 503


def describe_problems(errors: Sequence[Any], *, limit: int = 3) -> str:
    """Pydantic-style error dicts as one readable line: ``steps.0.hours: Input should be...``."""
    parts = []
    for error in list(errors)[:limit]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
