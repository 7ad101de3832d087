"""Print the API's OpenAPI document: `python -m morgus.app.openapi > console/openapi.json`.

console/openapi.json is checked in; the console's TypeScript types (console/src/api-types.ts) are generated from
it with openapi-typescript (`npm run gen-types` in console/). tests/test_api_routes.py and `npm run check-types`
fail when either is stale. The document does not depend on the settings, so defaults are used (no environment).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def openapi_document() -> dict[str, Any]:
    from morgus.app.api import create_app
    from morgus.config import Settings

    # The defaults, unvalidated and without reading the environment: nothing in the settings changes the document
    # (the token is optional either way), and the app is built, never started.
    return create_app(Settings.model_construct()).openapi()


def render() -> str:
    """Stable text: the same app gives the same bytes (key order is the routes' and models' order)."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
