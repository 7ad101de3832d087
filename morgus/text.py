"""Text that may come from anyone (a user, a model, a tool, the sandbox) made safe to store and to send.

Two values break the systems behind Morgus: a NUL (Postgres `text` and `jsonb` refuse it) and a lone UTF-16
surrogate such as "\\ud800" (Python's `json` and `os.fsdecode` produce them; they cannot be encoded as UTF-8,
so psycopg and Temporal's payload converter refuse them). Both become U+FFFD, the Unicode replacement
character, which is what a reader should see where bytes could not be represented. Everything else (other
control characters, any size) is valid text and passes unchanged.

Pure functions with no imports beyond the standard library: the store, the activities and the workflow use them.
"""

from __future__ import annotations

import math
from typing import Any

REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """`text` with NUL and unencodable code points (lone surrogates) replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16 so a high+low pair left split in a str is joined into its character and only a truly
        # lone surrogate is replaced.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clean_json(value: Any) -> Any:
    """A JSON-able value with every string (keys included) cleaned, and NaN/Infinity (which `jsonb` refuses)
    turned into null."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {(clean_text(k) if isinstance(k, str) else k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
