"""Morgus's HTTP API (FastAPI). For now: `/healthz` for load balancers and compose health checks; the console
issue adds the task endpoints and the console itself."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from morgus.config import Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        from starter.client import connect_temporal, open_store

        state["client"] = await connect_temporal(settings)
        state["store"] = await open_store(settings)
        yield
        await state["store"].close()

    app = FastAPI(title="Morgus", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        checks = {"temporal": False, "database": False}
        try:
            checks["temporal"] = await asyncio.wait_for(state["client"].service_client.check_health(), 3)
        except Exception:  # noqa: BLE001 - any failure is "unhealthy"
            pass
        try:
            async with state["store"].pool.connection(timeout=3) as conn:
                await conn.execute("select 1")
            checks["database"] = True
        except Exception:  # noqa: BLE001
            pass
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "unhealthy", **checks}, status_code=200 if ok else 503)

    return app
