"""Who is calling and what they may do: JWT bearer tokens with nested roles.

Roles nest: `admin` ⊇ `responder` ⊇ `viewer`. `ingest` is separate: it only
publishes alerts, so an ingest token reads nothing. `admin` may do everything.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Iterable

import jwt
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contracts import Actor, ActorKind
from gateway.problems import Problem
from foundation.settings import Settings


class Role(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    INGEST = "ingest"
    ADMIN = "admin"


# What each role grants, itself included.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.RESPONDER: frozenset({Role.RESPONDER, Role.VIEWER}),
    Role.INGEST: frozenset({Role.INGEST}),
    Role.ADMIN: frozenset(Role),
}


def granted(roles: Iterable[Role]) -> frozenset[Role]:
    """Every role the given roles amount to once nesting is applied."""
    out: set[Role] = set()
    for role in roles:
        out |= GRANTS[role]
    return frozenset(out)


@dataclass(frozen=True)
class User:
    """The caller, as its token says."""

    sub: str
    roles: frozenset[Role]

    @property
    def actor(self) -> Actor:
        return Actor(kind=ActorKind.PRODUCER if self.roles == {Role.INGEST} else ActorKind.USER, id=self.sub)

    def may(self, role: Role) -> bool:
        return role in granted(self.roles)


VERIFIED_CACHE = 4096


class TokenError(Exception):
    """A token that cannot be trusted; the message says why (safe to show)."""


def mint_token(settings: Settings, sub: str, roles: Iterable[str | Role], ttl_s: int | None = None) -> str:
    """Sign an HS256 token for `sub` with `roles` using settings.auth.jwt_secret.

    Raises ValueError for an unknown role or when no secret is configured.
    """
    secret = settings.auth.jwt_secret
    if secret is None:
        raise ValueError("auth.jwt_secret is not set (WARROOM_JWT_SECRET); cannot mint a token")
    names = sorted({Role(role).value for role in roles})
    now = int(time.time())
    claims = {
        "sub": sub,
        "roles": names,
        "iss": settings.auth.issuer,
        "iat": now,
        "exp": now + (ttl_s if ttl_s is not None else settings.auth.token_ttl_s),
    }
    return jwt.encode(claims, secret.get_secret_value(), algorithm="HS256")


class TokenVerifier:
    """Checks signatures (HS256 with the secret, RS256 with the public key) and claims."""

    def __init__(self, settings: Settings) -> None:
        self._keys: dict[str, Any] = {}
        if settings.auth.jwt_secret is not None:
            self._keys["HS256"] = settings.auth.jwt_secret.get_secret_value()
        if settings.auth.jwt_public_key:
            self._keys["RS256"] = settings.auth.jwt_public_key
        if not self._keys:
            raise ValueError("auth.jwt_secret or auth.jwt_public_key must be set to serve the API")
        self._issuer = settings.auth.issuer
        # A client sends the same token with every request; checking its signature (and,
        # in PyJWT, its base64 character by character) each time is most of auth's cost.
        self._verified: OrderedDict[str, tuple[User, float]] = OrderedDict()

    def verify(self, token: str) -> User:
        """The user a valid token names; TokenError otherwise."""
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            self._verified.move_to_end(token)
            return known[0]
        user, expires = self._verify(token)
        self._verified[token] = (user, expires)
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return user

    def _verify(self, token: str) -> tuple[User, float]:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None:
            raise TokenError(f"token algorithm {alg!r} is not accepted")
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], issuer=self._issuer,
                options={"require": ["sub", "exp", "iss"]},
            )
        except jwt.PyJWTError as err:
            raise TokenError(f"invalid token: {err}") from None
        sub, roles = claims.get("sub"), claims.get("roles", [])
        if not isinstance(sub, str) or not sub or len(sub) > 200:
            raise TokenError("claim 'sub' must be a non-empty string")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise TokenError("claim 'roles' must be a list of strings")
        # Unknown role names are ignored rather than refused, so a token issued
        # for a newer version still works for the roles this one knows.
        known = frozenset(Role(r) for r in roles if r in Role._value2member_map_)
        return User(sub=sub, roles=known), float(claims["exp"])


_bearer = HTTPBearer(auto_error=False, description="JWT signed with the configured secret")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _verified(request: Request, token: str | None) -> User:
    if not token:
        raise Problem.unauthorized("a bearer token is required")
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return verifier.verify(token)
    except TokenError as err:
        raise Problem.unauthorized(str(err)) from None


async def current_user(request: Request, credentials: Credentials) -> User:
    """The verified caller from `Authorization: Bearer`; 401 when missing or not valid."""
    return _verified(request, credentials.credentials if credentials else None)


async def stream_user(
    request: Request,
    credentials: Credentials,
    access_token: Annotated[
        str | None,
        Query(description="the token, for clients that cannot set headers (EventSource)", max_length=8192),
    ] = None,
) -> User:
    """Like current_user, but also accepts `?access_token=`: browsers' EventSource cannot set headers."""
    return _verified(request, credentials.credentials if credentials else access_token)


CurrentUser = Annotated[User, Depends(current_user)]
StreamUser = Annotated[User, Depends(stream_user)]


class RoleRequirement:
    """A dependency that lets a request through only for users granted `role`."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def check(self, user: User) -> User:
        if not user.may(self.role):
            raise Problem.forbidden(f"role '{self.role}' is required")
        return user

    async def __call__(self, user: CurrentUser) -> User:
        return self.check(user)


class StreamRoleRequirement(RoleRequirement):
    async def __call__(self, user: StreamUser) -> User:  # type: ignore[override]
        return self.check(user)


Viewer = Annotated[User, Depends(RoleRequirement(Role.VIEWER))]
Responder = Annotated[User, Depends(RoleRequirement(Role.RESPONDER))]
Ingest = Annotated[User, Depends(RoleRequirement(Role.INGEST))]
StreamViewer = Annotated[User, Depends(StreamRoleRequirement(Role.VIEWER))]
