"""/healthz: is Temporal reachable, is the database? 200 when both are, 503 otherwise. Outside /api, no token."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from morgus.app.api_deps import ApiState
from morgus.app.api_models import HealthView

router = APIRouter()


@router.get("/healthz", response_model=HealthView, responses={503: {"model": HealthView}})
async def healthz(request: Request) -> JSONResponse:
    # The state itself, not StoreDep/ClientDep: a probe answers "unhealthy", never a 500, whatever is missing.
    state: ApiState = request.app.state.morgus
    checks = {"temporal": False, "database": False}
    try:
        checks["temporal"] = await asyncio.wait_for(state.client.service_client.check_health(), 3)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001, S110 - any failure is "unhealthy"
        pass
    try:
        async with state.store.pool.connection(timeout=3) as conn:  # type: ignore[union-attr]
            await conn.execute("select 1")
        checks["database"] = True
    except Exception:  # noqa: BLE001, S110
        pass
    ok = all(checks.values())
    health = HealthView(status="ok" if ok else "unhealthy", **checks)
    return JSONResponse(health.model_dump(), status_code=200 if ok else 503)
