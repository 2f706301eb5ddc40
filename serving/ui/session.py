"""Sign-in for the web interface: signed session cookies, CSRF tokens and student links.

A teacher (or an admin) signs in with an API key of her tenant. The session cookie holds the
key's id, never the key, signed with the deployment's UI secret (:mod:`itsdangerous`); every
request re-reads the key's record (cached for seconds), so a revoked key signs its sessions out.
The cookie is HttpOnly, SameSite=Lax, and Secure over HTTPS. Every form carries the session's
CSRF token; the sign-in form, before there is a session, a token in a cookie of its own (double
submit). A student link is a signed token naming one learner of one tenant: it opens that
learner's GPS and nothing else.

The secret is the store setting ``ui-secret``, created once by whichever worker asks first, so
every worker and replica signs and checks with the same one.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from serving.auth import KeyCache, Principal
from serving.stores.base import LearnerStore, VersionConflict

__all__ = ["COOKIE", "LOGIN_COOKIE", "Session", "UiAuth"]

COOKIE = "zpd_session"
LOGIN_COOKIE = "zpd_login_csrf"
SECRET_SETTING = "ui-secret"
SESSION_S = 12 * 3600
STUDENT_LINK_S = 30 * 86_400


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str

    @property
    def is_admin(self) -> bool:
        return "admin" in self.principal.scopes


class UiAuth:
    def __init__(self, store: LearnerStore, keys: KeyCache):
        self.store, self.keys = store, keys
        self._secret: str | None = None

    def secret(self) -> str:
        if self._secret is None:
            found = self.store.get_setting(SECRET_SETTING)
            if found is None:
                try:
                    self.store.put_setting(SECRET_SETTING, secrets.token_urlsafe(48), expected_version=0)
                except VersionConflict:
                    pass  # another worker made it first: use theirs
                found = self.store.get_setting(SECRET_SETTING)
            assert found is not None
            self._secret = found[1]
        return self._secret

    def _serializer(self, salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret(), salt=salt)

    # ------------------------------------------------------------------ sessions
    def start(self, principal: Principal) -> str:
        """The cookie value of a new session for ``principal``."""
        return self._serializer("session").dumps({"k": principal.key_id, "c": secrets.token_urlsafe(24)})

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None (absent, forged, expired, or its key revoked)."""
        if not cookie:
            return None
        try:
            data = self._serializer("session").loads(cookie, max_age=SESSION_S)
        except BadSignature:
            return None
        record = self.keys.record(str(data.get("k", "")))
        if record is None or record.revoked:
            return None
        principal = Principal(record.key_id, record.tenant, frozenset(record.scopes), record.user)
        if not principal.scopes & {"teacher", "admin"}:
            return None
        return Session(principal, str(data.get("c", "")))

    @staticmethod
    def same(token: str | None, expected: str) -> bool:
        return bool(token) and bool(expected) and hmac.compare_digest(str(token), expected)

    # ------------------------------------------------------------------ student links
    def student_link(self, tenant: str, learner_id: str) -> str:
        return self._serializer("student").dumps({"t": tenant, "l": learner_id})

    def student(self, token: str) -> tuple[str, str] | None:
        """(tenant, learner id) of a student link, or None if it is forged or expired."""
        try:
            data = self._serializer("student").loads(token, max_age=STUDENT_LINK_S)
        except BadSignature:
            return None
        return str(data["t"]), str(data["l"])
