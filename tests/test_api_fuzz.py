"""Schemathesis, from the API's own OpenAPI document, against the REAL API (uvicorn on loopback, real Postgres
and Temporal): no 5xx, every status code declared, every response body conforming to its declared model.

Generated inputs are both valid (positive) and invalid (negative: wrong types, out-of-range numbers, missing
fields), a bounded number per operation so the run stays well under a minute. The event stream is left out: it
never ends by design; tests/test_api_security.py covers it.
"""

from __future__ import annotations

import asyncio

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.api import served

EXAMPLES = 60
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(base_url: str) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/events":
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.generate],
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.path
                continue  # nothing to get wrong (no parameters): /healthz, /api/config
            ran.append(f"{operation.method.upper()} {operation.path} {mode.value}")
    return ran


async def test_the_api_survives_schemathesis(client, store, settings):
    async with served(settings, client, store) as http:
        ran = await asyncio.to_thread(fuzz, str(http.base_url).rstrip("/"))
    assert len([r for r in ran if r.endswith("positive")]) == 21, ran  # every operation but the stream
    assert len([r for r in ran if r.endswith("negative")]) >= 6, ran  # every one that takes input
