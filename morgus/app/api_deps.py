"""What an API route may depend on, typed: the settings, the store, the Temporal client, the event broadcaster,
and the token check. Routes declare them as parameters (`settings: SettingsDep`) instead of reaching into a
closure, so each router module stands alone and a type checker sees what every handler uses.

The values live on `app.state.morgus` (an `ApiState`), filled by `create_app` and its lifespan (morgus/app/api.py).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import ResponseValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from morgus.app.event_stream import Broadcaster
from morgus.config import Settings
from morgus.db.store import Store


@dataclass
class ApiState:
    """One app's live parts: given to `create_app`, or opened by its lifespan (client, store) and started there
    (events). A route only runs inside the lifespan, so none of them is None by then."""

    settings: Settings
    client: Client | None = None
    store: Store | None = None
    events: Broadcaster | None = None


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.morgus
    return state


def _ready(value: Any, what: str) -> Any:
    if value is None:  # a route ran outside the lifespan: a bug, answered as "internal error"
        raise RuntimeError(f"the API's {what} is not open")
    return value


async def get_settings(request: Request) -> Settings:
    return _state(request).settings


async def get_store(request: Request) -> Store:
    store: Store = _ready(_state(request).store, "store")
    return store


async def get_client(request: Request) -> Client:
    client: Client = _ready(_state(request).client, "Temporal client")
    return client


async def get_events(request: Request) -> Broadcaster:
    events: Broadcaster = _ready(_state(request).events, "event broadcaster")
    return events


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
ClientDep = Annotated[Client, Depends(get_client)]
EventsDep = Annotated[Broadcaster, Depends(get_events)]

# ---------------------------------------------------------------- the token

bearer = HTTPBearer(auto_error=False, description="MORGUS_API_TOKEN, when the server sets one")


async def authorized(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The /api router's dependency (morgus/app/api_routes/__init__.py): every route under it needs the token, or a
    Supabase user's JWT when the server accepts them (morgus/app/api_auth.py); it records who is calling."""
    from morgus.app.api_auth import OPERATOR, AuthError, set_caller, user_of, users_enabled

    token = settings.api_token
    users = users_enabled(settings)
    if not token and not users:
        set_caller(OPERATOR)  # an open server (loopback by default): everyone is the operator, as before
        return
    given = credentials.credentials if credentials is not None else ""
    # Constant time, on bytes (compare_digest refuses non-ASCII str; a header may carry any latin-1 byte).
    if token and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
        set_caller(OPERATOR)
        return
    if users and given:
        try:
            set_caller(await user_of(given, settings))
            return
        except AuthError as e:
            raise HTTPException(401, str(e), headers={"WWW-Authenticate": "Bearer"}) from None
    wanted = "<MORGUS_API_TOKEN>" if not users else "<a Supabase access token>" if not token else "<token or JWT>"
    raise HTTPException(
        401, f"this endpoint needs Authorization: Bearer {wanted}", headers={"WWW-Authenticate": "Bearer"}
    )


# ---------------------------------------------------------------- helpers for handlers


def task_id_of(task_id: str) -> str:
    """A path's task reference (`<uuid>` or `task-<uuid>`) as the bare uuid, or 404."""
    from morgus.app.tasks import TaskOpError, parse_task_ref

    try:
        return parse_task_ref(task_id)
    except TaskOpError:
        raise HTTPException(404, "no task with that id (expected a uuid or task-<uuid>)") from None


async def row_or_404(store: Store, task_id: str) -> dict[str, Any]:
    # Called in the handler, not as a dependency: dependencies run before the body is validated, and a bad body
    # must stay a 422 even for a task that does not exist.
    from morgus.app.api_auth import current_owner

    row = await store.fetch_task(task_id)
    owner = current_owner()
    # Another user's task is answered exactly as one that does not exist.
    if row is None or (owner is not None and str(row.get("owner_id")) != owner):
        raise HTTPException(404, f"no task with id {task_id}")
    return row


View = TypeVar("View", bound=BaseModel)


def view(model: type[View], data: Any) -> View:
    """A handler's typed result. Data that does not fit its model is our bug: the same 500 "internal error" (and
    log line) as FastAPI's own response check, never a 422 that would blame the client."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ResponseValidationError(e.errors(include_url=False), body=data) from None
