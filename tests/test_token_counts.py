"""Counting a request per part (issue 15): each turn tokenizes only the messages it adds, the count is exactly the
joined prompt's, the part cache stays small whatever a message's size, and the characters/4 fallback still holds
when the tokenizer is missing. Server-free."""

from __future__ import annotations

import random
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tiktoken
from tiktoken_ext import openai_public

from morgus import tokens
from morgus.activities.llm_reply import estimated_usage
from morgus.context import estimate_tokens, fit_request
from morgus.contracts import ChatMessage, ToolCall
from morgus.models import ModelInfo
from morgus.tokens import PART_COUNTS, PartCounts, count_prompt, count_text, encoding, prompt_text

ROOT = Path(__file__).resolve().parent.parent
TOOLS = [{"type": "function", "function": {"name": "file_read", "parameters": {"type": "object"}}}]
# endings that decide how the joined text's last piece is cut: spaces of every kind, marks, digits, symbols
ENDINGS = ["", " ", "  ", "\u00a0", "\u3000", "e\u0301", "\u0301" * 40, "'s", "123", "!!!" * 30, "\\", "\n", "/", "🙂"]
UNICODE = [
    "日本語のテキストです。",
    "👩‍👩‍👧 family, ZWJ",
    "مرحبا بالعالم",
    "Ωμέγα ά",
    "lone \ud800 surrogate",
    "\u200b\ufeff",
]


def code_messages(n: int, seed: int) -> list[dict]:
    """A conversation of real, code-heavy messages: file_read calls and slices of this repository's sources, with
    unicode and awkward endings mixed in."""
    rng = random.Random(seed)
    sources = [p.read_text() for p in sorted((ROOT / "morgus").rglob("*.py"))]
    msgs: list[dict] = [{"role": "system", "content": "You are Morgus."}, {"role": "user", "content": "Phase: BUILD"}]
    for i in range(n):
        text = rng.choice(sources)
        start = rng.randrange(len(text))
        chunk = text[start : start + rng.randint(0, 4000)] + rng.choice(UNICODE) * rng.randint(0, 1)
        end = rng.choice(ENDINGS)
        call = {"id": f"c{i}{end}", "type": "function", "function": {"name": "file_read", "arguments": "{}"}}
        msgs.append({"role": "assistant", "content": rng.choice([None, "Reading." + end]), "tool_calls": [call]})
        msgs.append({"role": "tool", "content": chunk + end, "tool_call_id": f"c{i}{end}"})
    return msgs


def test_the_per_part_count_is_the_joined_count():
    assert encoding() is not None
    for seed in range(40):
        msgs = code_messages(random.Random(seed).randint(0, 8), seed)
        for tools in (None, [], TOOLS):
            for upto in (0, 1, len(msgs) - 1, len(msgs)):  # every kind of message last, and none
                request = msgs[:upto]
                assert count_prompt(request, tools) == count_text(prompt_text(request, tools)), (seed, upto)
    huge = [{"role": "user", "content": "x"}, {"role": "tool", "content": "def f(x):\n    return x  # ü\n" * 70_000}]
    assert len(prompt_text(huge)) > 2_000_000
    assert count_prompt(huge, TOOLS) == count_text(prompt_text(huge, TOOLS))
    for run in ("!" * 253, "!" * 254, "!" * 255, "}]" * 500_000):  # a last part ending in a long run of symbols
        request = [*huge[:1], {"role": "tool", "content": "a", "tool_call_id": "a" + run}]
        assert count_prompt(request, TOOLS) == count_text(prompt_text(request, TOOLS)), len(run)
    msgs = code_messages(3, 1)
    assert estimate_tokens(msgs, TOOLS) == count_text(prompt_text(msgs, TOOLS)) + 4 * len(msgs)


def test_a_turn_tokenizes_only_what_it_adds():
    PART_COUNTS.clear()
    msgs = code_messages(30, 7)
    count_prompt(msgs[:-2], TOOLS)
    assert (PART_COUNTS.hits, PART_COUNTS.misses) == (0, len(msgs) - 2 + 1)  # every message and the tool list once
    count_prompt(msgs, TOOLS)  # the next turn: an assistant message and its tool result are new
    assert (PART_COUNTS.hits, PART_COUNTS.misses) == (len(msgs) - 2 + 1, len(msgs) + 1)
    count_prompt(msgs, [*TOOLS, {"type": "function", "function": {"name": "other"}}])  # another tool list: counted
    assert PART_COUNTS.misses == len(msgs) + 2


def test_raising_the_watermark_counts_only_the_elided_stubs():
    BIG = "lorem ipsum dolor sit amet " * 300
    msgs = [
        ChatMessage(seq=0, role="system", content="You are Morgus."),
        ChatMessage(seq=1, role="user", content="Phase: BUILD"),
    ]
    for i in range(12):
        seq = len(msgs)
        msgs.append(
            ChatMessage(
                seq=seq,
                role="assistant",
                content=f"reading {i}",
                tool_calls=[ToolCall(id=f"c{i}", name="file_read", arguments="{}")],
            )
        )
        msgs.append(ChatMessage(seq=seq + 1, role="tool", content=f"{i} {BIG}", tool_call_id=f"c{i}"))
    PART_COUNTS.clear()
    _, whole, _ = fit_request(msgs, None, TOOLS, 10**9)
    misses = PART_COUNTS.misses
    request, size, mark = fit_request(msgs, None, TOOLS, whole - 1)  # no longer fits: the watermark rises
    elided = [m for m in request if "[tool result elided" in (m["content"] or "")]
    assert mark > 0 and elided and size < whole
    # the first try (the same request as before) is all hits; the second tokenizes only the elided messages
    assert PART_COUNTS.misses - misses == len(elided) < len(msgs)
    assert size == count_text(prompt_text(request, TOOLS)) + 4 * len(request)


def test_an_estimated_usage_reuses_the_count_made_before_sending():
    usage = estimated_usage(1234, "x" * 400, [ToolCall(id="c", name="file_read", arguments="y" * 96)], ModelInfo())
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1234, (400 + 9 + 96) // 4, 1234 + 126)


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    enc = encoding()
    cache = PartCounts(max_entries=3)
    for text in ("a", "b", "c"):
        cache.count(text, enc)
    cache.count("a", enc)  # used again: now the newest
    cache.count("d", enc)  # over the bound: "b", the least recently used, goes
    assert len(cache) == 3
    cache.count("a", enc)
    cache.count("b", enc)
    assert (cache.hits, cache.misses) == (2, 5)


def test_a_huge_part_costs_the_cache_what_a_small_one_does():
    enc = encoding()
    cache = PartCounts()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hostile = '🙂 {"a": [' * 200_000  # 2 MB of symbols and emoji
        cache.count(hostile, enc)
        cache.count("small", enc)
        del hostile  # and with it the UTF-8 copy the tokenizer leaves cached on the string
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == 2 and kept < 4_096, kept  # two digests and two ints, not the text or its tokens


def test_counts_from_threads_agree():
    PART_COUNTS.clear()
    msgs = code_messages(20, 3)
    expected = count_text(prompt_text(msgs, TOOLS))
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: count_prompt(msgs, TOOLS), range(16))) == {expected}


def test_the_vocabulary_keeps_only_the_rust_tables_and_its_checksum():
    enc = encoding()
    assert not hasattr(enc, "_mergeable_ranks")  # the ~27 MiB Python copy is gone; encoding still works
    assert count_text("hello world") == 2
    download = openai_public.load_tiktoken_bpe
    with pytest.raises(ValueError, match="sha256"):
        tokens._build(tiktoken, openai_public, b"aGVsbG8= 0\n")  # a tampered vocabulary is refused
    assert openai_public.load_tiktoken_bpe is download  # and tiktoken's own loader is put back


@pytest.fixture
def no_tokenizer(monkeypatch):
    """A Python without tiktoken: importing it fails, as where the package is missing."""
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    tokens._encoding.cache_clear()
    yield
    tokens._encoding.cache_clear()  # loaded again, with tiktoken, by the next test that counts


def test_without_the_tokenizer_counts_are_characters_over_four(no_tokenizer):
    assert encoding() is None
    PART_COUNTS.clear()
    for seed in range(5):
        msgs = code_messages(6, seed)
        for upto in (0, len(msgs)):
            joined = prompt_text(msgs[:upto], TOOLS)
            assert count_prompt(msgs[:upto], TOOLS) == count_text(joined) == len(joined) // 4
    assert estimate_tokens(msgs, None) == len(prompt_text(msgs)) // 4 + 4 * len(msgs)
    assert len(PART_COUNTS) == 0  # estimates are not cached: they cost a length
