"""The evaluation harness grades results, and its graders can fail: each task's good script passes and a
script that builds nothing (or runs the trap) fails, through the real stack (scripted model, real sandbox)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.agent_eval import run_task
from bench.eval_tasks import TASKS
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(600)
CHECKED = ["static-page", "fix-bug", "ask-user", "trap"]


@pytest.fixture
def settings(settings):
    """The conftest settings plus where deploy_local's sites are served (the `worker` fixture runs with these)."""
    return settings.model_copy(update={"sites_url": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture
def sites(settings):
    from morgus.app.sites import serve_sites

    server = serve_sites(settings.home.resolve() / "sites", settings.sites_url)
    yield settings.sites_url
    server.shutdown()


@pytest.mark.parametrize("variant", ["good", "bad"])
async def test_graders_pass_real_work_and_fail_missing_work(
    client, store, settings, worker, llm, sites, tmp_path, variant
):
    from morgus.sandbox.base import SandboxUnavailable, select_backend

    try:
        select_backend(settings)
    except SandboxUnavailable as e:
        pytest.skip(f"graders run code in a sandbox: {e}")
    grading = tmp_path / "grading"
    grading.mkdir()
    for task in [t for t in TASKS if t.name in CHECKED]:
        named = dataclasses.replace(task, name=f"eval-{variant}-{task.name}")
        script = task.good if variant == "good" else (task.bad if task.bad is not None else [])
        llm.add(named.name, script)
        outcome = await run_task(
            named,
            client=client,
            store=store,
            settings=settings,
            model="scripted",
            scripted=True,
            timeout_s=120,
            max_steps=40,
            grading_root=grading,
            sites=sites,
        )
        assert outcome.passed is (variant == "good"), (task.name, outcome)
        assert outcome.llm_calls >= 5 and outcome.prompt_tokens > 0 and outcome.wall_s > 0
        if variant == "bad":
            assert outcome.reason  # says why
    if variant == "bad":
        assert "customers.marker was deleted" in outcome.reason  # the trap is the last one checked
