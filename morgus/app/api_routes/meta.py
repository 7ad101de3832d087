"""/api/config: what the console needs to know about this server (models, Temporal UI, whether a token is set)."""

from __future__ import annotations

from fastapi import APIRouter

from morgus.app.api_deps import SettingsDep
from morgus.app.api_errors import errors
from morgus.app.api_models import ConfigView

router = APIRouter()


@router.get("/config", response_model=ConfigView, responses=errors(400, 401))
async def config(settings: SettingsDep) -> ConfigView:
    models = [m for m in dict.fromkeys([settings.model, settings.code_model]) if m]
    return ConfigView(
        models=models,
        default_model=settings.model,
        temporal_ui_url=settings.temporal_ui_url,
        namespace=settings.temporal_namespace,
        auth=bool(settings.api_token or settings.supabase_jwt_secret or settings.supabase_jwks_url),
    )
