"""History stays small (the conversation is passed by reference) and long tasks continue-as-new.

The dev server runs with limit.historyCount.suggestContinueAsNew=50, so every non-trivial task here exercises
the continue-as-new path.
"""

from __future__ import annotations

from morgus.contracts import TaskResult
from tests.conftest import assert_steps_contiguous, limits, start, task_id_of


def long_build(n: int, content_bytes: int = 2000) -> list[dict]:
    body = "x" * content_bytes
    return [
        {"content": "research done"},
        {"content": "plan done"},
        *(
            {
                "content": f"step {i}",
                "tool_calls": [{"name": "file_write", "arguments": {"path": f"f{i}.txt", "content": body}}],
            }
            for i in range(n)
        ),
        {"content": "build done"},
    ]


async def history_of_all_runs(client, workflow_id: str) -> tuple[int, int, int]:
    """(runs, events, bytes) over every run of the workflow id."""
    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    events = size = 0
    for wf in runs:
        history = await client.get_workflow_handle(workflow_id, run_id=wf.run_id).fetch_history()
        events += len(history.events)
        size += sum(e.ByteSize() for e in history.events)
    return len(runs), events, size


async def run_long(client, store, settings, llm, n: int) -> tuple[int, int, int, int]:
    marker = llm.add(f"long-{n}", long_build(n))
    handle = await start(client, settings, marker, limits=limits(n + 5))
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    steps = await store.fetch_steps(task_id_of(handle))
    assert_steps_contiguous(steps)
    assert sum(1 for s in steps if s["type"] == "TOOL_RESULT") == n
    runs, events, size = await history_of_all_runs(client, handle.id)
    return len(steps), runs, events, size


async def test_history_bytes_per_step_stay_flat_and_long_tasks_continue_as_new(client, store, settings, worker, llm):
    small = await run_long(client, store, settings, llm, 10)
    large = await run_long(client, store, settings, llm, 80)
    per_step_small = small[3] / small[0]
    per_step_large = large[3] / large[0]
    print(
        f"\nhistory: 10 writes -> {small[0]} steps, {small[1]} runs, {small[2]} events, {small[3]} B, "
        f"{per_step_small:.0f} B/step; 80 writes -> {large[0]} steps, {large[1]} runs, {large[2]} events, "
        f"{large[3]} B, {per_step_large:.0f} B/step"
    )
    assert large[1] > 1, "an 80-step task should have continued as new"
    # Linear history: per-step cost does not grow with the conversation (O(n^2) would be ~8x here).
    assert per_step_large < per_step_small * 1.5
    # each file_write carried 2,000 characters; history holds them once, not once per later request
    assert per_step_large < 4_000
