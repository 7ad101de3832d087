"""The API's routers (morgus/app/api_routes/): no route escapes the token check, wherever it is declared, and the
checked-in OpenAPI document (console/openapi.json, from which the console's types are generated) is current."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.exceptions import ResponseValidationError

from morgus.app.api import create_app
from morgus.app.api_deps import authorized, view
from morgus.app.api_models import TaskView
from morgus.app.openapi import render
from morgus.config import Settings
from tests.helpers.api import is_error, served

ROOT = Path(__file__).resolve().parent.parent
# FastAPI's own document routes and the health probe: the only paths outside /api, and none needs the token.
OPEN_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz"}
TOKEN = "route-guard-token"


def all_routes(app: FastAPI) -> list[Any]:
    """Every route of the built app, with its effective path and dependencies (routers included lazily or not)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # a FastAPI that flattens included routers into app.routes
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def dependency_calls(route: Any) -> list[Any]:
    """Every dependency a route runs, its routers' included, at any depth."""
    calls, todo = [], list(route.dependant.dependencies)
    while todo:
        dep = todo.pop()
        calls.append(dep.call)
        todo.extend(dep.dependencies)
    return calls


def test_the_checked_in_openapi_document_is_current() -> None:
    checked_in = (ROOT / "console" / "openapi.json").read_text()
    assert render() == checked_in, (
        "console/openapi.json is stale: run `python -m morgus.app.openapi > console/openapi.json`"
        " and `cd console && npm run gen-types`"
    )


def test_every_route_under_api_depends_on_the_token_check_and_nothing_else_is_open() -> None:
    app = create_app(Settings.model_construct(api_token=TOKEN))
    routes = all_routes(app)
    seen = set()
    for route in routes:
        path = route.path
        seen.add(path)
        if path == "/api" or path.startswith("/api/"):
            assert authorized in dependency_calls(route), f"{path} is not behind the token check"
        else:
            assert path in OPEN_PATHS, f"{path} is outside /api: is it meant to be open without the token?"
    # the walk saw the routers' routes, not only the app's own (a FastAPI that hides them would pass vacuously)
    assert {"/healthz", "/api/config", "/api/tasks", "/api/tasks/{task_id}/cancel", "/api/events"} <= seen


def test_a_result_that_does_not_fit_its_model_is_our_500_not_the_clients_422() -> None:
    with pytest.raises(ResponseValidationError):
        view(TaskView, {"id": "not a uuid"})
    with pytest.raises(ResponseValidationError):
        view(TaskView, None)  # a row that vanished between the insert and the read


async def test_every_operation_in_the_document_needs_the_token_and_a_known_host(client, store, settings_with) -> None:
    """Driven by the served /openapi.json, so an operation added to any router is checked with no edit here."""
    settings = settings_with(MORGUS_API_TOKEN=TOKEN)
    good = {"Authorization": f"Bearer {TOKEN}"}
    async with served(settings, client, store) as http:
        document = (await http.get("/openapi.json")).json()
        operations = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
        assert len(operations) >= 10, operations
        for method, path in operations:
            url = path.replace("{task_id}", str(uuid.uuid4()))
            # a JSON body that fits no request model: with the token the answer is a 422, never a change
            write = method in ("POST", "PUT", "PATCH", "DELETE")
            body = {"content": b"[]", "headers": {"Content-Type": "application/json"}} if write else {}
            if path in OPEN_PATHS:
                assert "security" not in document["paths"][path][method.lower()], path
                continue
            assert path.startswith("/api/"), path
            assert document["paths"][path][method.lower()]["security"] == [{"HTTPBearer": []}], path
            for headers in (
                {},
                {"Authorization": f"Bearer {TOKEN}x"},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": f"bearer{TOKEN}"},
            ):
                resp = await http.request(method, url, **body | {"headers": body.get("headers", {}) | headers})
                assert "MORGUS_API_TOKEN" in is_error(resp, 401), (method, path, headers)
            foreign = {"Host": "evil.example"} | good
            is_error(await http.request(method, url, **body | {"headers": body.get("headers", {}) | foreign}), 400)
            if write:
                is_error(
                    await http.request(method, url, content=b"[]", headers=good | {"Content-Type": "text/plain"}), 415
                )
            async with (
                asyncio.timeout(10),
                http.stream(method, url, **body | {"headers": body.get("headers", {}) | good}) as resp,
            ):
                assert resp.status_code != 401, (method, path)
                # a read answers (or finds no such task); a write, or a read missing a required query parameter
                # (files/content's path), refuses the request before touching anything
                params = document["paths"][path][method.lower()].get("parameters", [])
                required_query = any(p["in"] == "query" and p.get("required") for p in params)
                assert resp.status_code in ((422,) if method == "POST" or required_query else (200, 404)), (
                    method,
                    path,
                    resp.status_code,
                )
