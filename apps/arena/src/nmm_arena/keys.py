"""Everything keyed by the server's secret: session cookies, voter pseudonyms, sides, admin cookies.

The secret is 32 random bytes made at the database's first start and never sent anywhere. A
session cookie is `<id>.<HMAC(secret, id)>`, so only cookies this server issued are accepted;
which model is shown left is a bit of HMAC(secret, id, pair), so no one without the secret can
compute another voter's sides, or their own for a pair they have not opened.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time


def new_token() -> str:
    """A fresh random token (sessions, the admin token)."""
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """What is stored of an admin token."""
    return hashlib.sha256(token.encode()).hexdigest()


class ServerKeys:
    """HMACs under the server secret, one purpose label per use so no value stands in for another."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the server secret must have at least 16 bytes")
        self._secret = secret

    def mac(self, purpose: str, *parts: str) -> bytes:
        """HMAC-SHA256 of the purpose and the parts."""
        message = "\0".join((purpose, *parts)).encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def session_cookie(self, session: str) -> str:
        """The cookie value that proves this server issued `session`."""
        return f"{session}.{self.mac('session', session).hex()[:32]}"

    def session_from_cookie(self, cookie: str | None) -> str | None:
        """The session id of a cookie this server signed, else None (unknown, forged, malformed)."""
        if not cookie or len(cookie) > 128 or cookie.count(".") != 1:
            return None
        session, signature = cookie.split(".")
        if not session or not hmac.compare_digest(signature, self.mac("session", session).hex()[:32]):
            return None
        return session

    def voter_id(self, session: str) -> str:
        """The pseudonym stored with votes; it cannot be turned back into a cookie."""
        return self.mac("voter", session).hex()[:16]

    def swapped(self, session: str, pair_key: str) -> bool:
        """Whether this session sees the pair's right answer on the left."""
        return bool(self.mac("side", session, pair_key)[0] & 1)

    def order_key(self, session: str) -> bytes:
        """The key of this session's order of pairs."""
        return self.mac("order", session)

    def admin_cookie(self, admin_sha256: str, hours: float = 12.0) -> str:
        """A login for the admin pages; it lapses after `hours` and when the token is rotated."""
        expires = str(int(time.time() + hours * 3600))
        return f"{expires}.{self.mac('admin', admin_sha256, expires).hex()}"

    def admin_cookie_valid(self, cookie: str | None, admin_sha256: str) -> bool:
        """True for an unexpired admin cookie made for the current admin token."""
        if not cookie or len(cookie) > 128 or cookie.count(".") != 1:
            return False
        expires, signature = cookie.split(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(signature, self.mac("admin", admin_sha256, expires).hex())
