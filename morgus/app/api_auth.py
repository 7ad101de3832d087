"""Who is calling the API: the operator (MORGUS_API_TOKEN, or no token configured at all) or a Supabase user (a JWT
the project issued: HS256 with MORGUS_SUPABASE_JWT_SECRET, or signed by a key of MORGUS_SUPABASE_JWKS_URL).

A user sees and acts on their own tasks only (`owner_id` = the token's `sub`); another user's task is a 404, the
same answer as a task that does not exist. The caller is kept for the request in a context variable set by the
/api router's dependency (morgus/app/api_deps.py::authorized), so every route that looks a task up through
`row_or_404` is scoped without a line of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from morgus.config import Settings

# Supabase signs a signed-in user's access token for this audience; its anon and service_role keys carry none.
AUDIENCE = "authenticated"
ASYMMETRIC = ["RS256", "ES256", "EdDSA"]


@dataclass(frozen=True)
class Caller:
    owner: str | None  # None: the operator, who sees every task

    @property
    def operator(self) -> bool:
        return self.owner is None


OPERATOR = Caller(None)
_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("morgus_api_caller")


class AuthError(Exception):
    """The token is not one this server accepts; the message says why, in one sentence (never the token)."""


def users_enabled(settings: Settings) -> bool:
    return bool(settings.supabase_jwt_secret or settings.supabase_jwks_url)


def set_caller(caller: Caller) -> None:
    _caller.set(caller)


def current_owner() -> str | None:
    """The signed-in user's id for this request, None for the operator. Outside a request guarded by the /api
    router there is no caller: a bug, never a reason to show everything."""
    try:
        return _caller.get().owner
    except LookupError:
        raise RuntimeError("no API caller for this request (a route outside the guarded /api router?)") from None


_jwks_clients: dict[str, jwt.PyJWKClient] = {}


def _jwks_key(url: str, token: str) -> Any:
    client = _jwks_clients.get(url)
    if client is None:
        client = _jwks_clients[url] = jwt.PyJWKClient(url, cache_keys=True, lifespan=600, timeout=10)
    return client.get_signing_key_from_jwt(token).key


async def user_of(token: str, settings: Settings) -> Caller:
    """The Supabase user a JWT names. Raises AuthError for a token that is malformed, unsigned (`alg: none`),
    signed with another key or algorithm, expired, not for signed-in users, or whose `sub` is not a user id."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("the bearer token is neither MORGUS_API_TOKEN nor a JWT") from None
    alg = header.get("alg")
    try:
        if alg == "HS256" and settings.supabase_jwt_secret:
            key: Any = settings.supabase_jwt_secret
            algorithms = ["HS256"]
        elif alg in ASYMMETRIC and settings.supabase_jwks_url:
            # the JWKS client fetches over HTTP (cached): not on the event loop
            key = await asyncio.to_thread(_jwks_key, settings.supabase_jwks_url, token)
            algorithms = ASYMMETRIC
        else:
            raise AuthError(f"a JWT signed with {str(alg)[:20]!r} is not accepted by this server")
        claims = jwt.decode(
            token, key, algorithms=algorithms, audience=AUDIENCE, options={"require": ["exp", "sub", "aud"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the JWT has expired; sign in again") from None
    except jwt.InvalidAudienceError:
        raise AuthError("the JWT is not a signed-in user's (audience must be 'authenticated')") from None
    except jwt.PyJWTError as e:
        raise AuthError(f"the JWT is not valid ({type(e).__name__})") from None
    try:
        sub = str(uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise AuthError("the JWT's sub is not a user id") from None
    return Caller(sub)
