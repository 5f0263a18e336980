"""Password hashing: argon2id at OWASP's floor (m=19 MiB, t=2, p=1), rehashed on sign-in
whenever the parameters here are raised."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, type=Type.ID)
MIN_LENGTH = 10

# Verifying against this keeps an unknown email as slow as a wrong password, so timing
# does not tell which emails have accounts.
_DUMMY_HASH = HASHER.hash("parley-no-such-user")


@dataclass(frozen=True)
class Verified:
    ok: bool
    needs_rehash: bool = False


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> Verified:
    """Whether ``password`` matches; ``needs_rehash`` once it was hashed with weaker settings."""
    try:
        HASHER.verify(stored_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return Verified(ok=False)
    if stored_hash is None:
        return Verified(ok=False)
    return Verified(ok=True, needs_rehash=HASHER.check_needs_rehash(stored_hash))


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None. Length, not composition rules (NIST 800-63B)."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > 1024:
        return "use at most 1024 characters"
    return None
