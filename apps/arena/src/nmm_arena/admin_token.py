"""The admin token: given (flag or environment) for one run, or made once and kept as a hash."""

from __future__ import annotations

from nmm_arena.db import ADMIN_SHA256, Database
from nmm_arena.keys import new_token, token_sha256
from nmm_core.errors import ConfigError

ENV = "NMM_ARENA_ADMIN_TOKEN"
MIN_LENGTH = 16


def resolve_admin_token(db: Database, given: str | None, *, rotate: bool = False) -> tuple[str, str | None]:
    """(SHA-256 of the admin token, the new token when one was made now and must be shown once).

    A given token is used as it is and not stored; otherwise the stored hash is kept across
    restarts, and a new token is made at the first start or when `rotate` asks for one.
    """
    if given is not None:
        if rotate:
            raise ConfigError(f"--rotate-admin-token makes a new stored token: do not also give one "
                              f"(--admin-token or {ENV})")
        if len(given.strip()) < MIN_LENGTH:
            raise ConfigError(f"the admin token must have at least {MIN_LENGTH} characters")
        return token_sha256(given.strip()), None
    stored = db.setting(ADMIN_SHA256)
    if stored and not rotate:
        return stored, None
    token = new_token()
    db.set_setting(ADMIN_SHA256, token_sha256(token))
    return token_sha256(token), token
