"""Bearer tokens for mutations: HS256 JWTs with `sub` (the user id), `exp`, and optional `roles: ["admin"]`.

Only HS256 is accepted, so a token signed with `none` or another algorithm is
rejected rather than trusted. Queries stay anonymous; `Principal` checks are
called by the mutations that need them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from graphql_api.errors import Forbidden, Unauthenticated
from graphql_api.settings import Settings, SettingsError

ALGORITHM = "HS256"
ADMIN_ROLE = "admin"
# Used only when DEBUG=true and AUTH_JWT_SECRET is unset, so that `make serve` and
# `bookrec token` agree across processes without configuration. Public by design:
# tokens signed with it must never be accepted outside development.
DEV_JWT_SECRET = "bookrec-development-secret-never-use-in-production"


def jwt_secret(settings: Settings) -> str:
    """AUTH_JWT_SECRET, or the public development secret in DEBUG; outside DEBUG a missing secret stops start-up."""
    if settings.auth_jwt_secret:
        return settings.auth_jwt_secret
    if not settings.debug:
        raise SettingsError("AUTH_JWT_SECRET must be set unless DEBUG=true (mutations need it to verify tokens)")
    return DEV_JWT_SECRET


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for."""

    user_id: str
    is_admin: bool

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this operation needs an admin token")

    def require_user_or_admin(self, user_id: str) -> None:
        if not self.is_admin and self.user_id != user_id:
            raise Forbidden("a token may only act for its own user unless it is an admin token")


class TokenAuthority:
    """Issues and verifies the service's bearer tokens with one secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def issue(self, user_id: str, *, admin: bool = False, ttl_seconds: int = 3600) -> str:
        now = int(time.time())
        claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
        if admin:
            claims["roles"] = [ADMIN_ROLE]
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization: Bearer <token>` header; Unauthenticated when absent or invalid."""
        if not authorization:
            raise Unauthenticated("this operation needs an `Authorization: Bearer <token>` header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be `Bearer <token>`")
        try:
            claims = jwt.decode(token.strip(), self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("the token is invalid") from None
        roles = claims.get("roles")
        return Principal(user_id=claims["sub"], is_admin=isinstance(roles, list) and ADMIN_ROLE in roles)
