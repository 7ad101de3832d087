"""The Content-Disposition of a workspace download (morgus/app/api_routes/files.py `_attachment`). No server.

The file name is the sandbox's: the name a browser or `curl -OJ` saves under must not carry a right-to-left
override ("invoice\\u202efdp.exe" saved reads as "invoiceexe.pdf"), a control character, or break the header."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from morgus.app.api_routes.files import _attachment


def exact_name(header: str) -> str:
    match = re.search(r"filename\*=UTF-8''([^;]+)", header)
    assert match, header
    return unquote(match.group(1))


@pytest.mark.parametrize(
    "name",
    ["invoice\u202efdp.exe", "a\u2066b\u2069.txt", "line\nbreak.txt", "esc\x1b[2J.txt", "zero\u200bwidth", "bom\ufeff"],
)
def test_no_control_or_format_character_reaches_the_saved_name(name):
    header = _attachment(name)
    assert header.isascii() and "\n" not in header and "\r" not in header
    saved = exact_name(header)
    assert not any(c.isascii() and not c.isprintable() for c in saved), saved
    assert not re.search("[\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]", saved), saved


def test_a_plain_or_accented_name_is_kept_exactly():
    for name in ("index.html", "résumé €.pdf", "日本語.txt", 'quote"semi;back\\slash.txt'):
        assert exact_name(_attachment(name)) == name
