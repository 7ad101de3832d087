"""Which URL cloudflare_deploy records as the deployment (morgus/activities/tools/deploy.py `pages_url`). No server.

wrangler runs inside the sandbox, so its output is the sandbox's to forge (a planted `wrangler` on the PATH, an npm
script): the URL recorded must still be one of the task's own Pages project. It becomes the deployment artifact the
console frames as a live preview and links, and the URL the task reports, so `https://x.pages.dev@evil.example/`
(userinfo) or `https://x.pages.dev.evil.example/` must never be recorded as if Cloudflare had said it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from morgus.activities.tools.deploy import pages_url

PROJECT = "bakery"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Deployment complete: https://abc123.bakery.pages.dev", "https://abc123.bakery.pages.dev"),
        ("Take a peek over at https://abc123.bakery.pages.dev/\nDone", "https://abc123.bakery.pages.dev/"),
        ("see https://bakery.pages.dev/index.html now", "https://bakery.pages.dev/index.html"),
        ("no url printed at all", "https://bakery.pages.dev"),
    ],
)
def test_the_project_url_wrangler_prints_is_recorded(output, expected):
    assert pages_url(output, PROJECT) == expected


@pytest.mark.parametrize(
    "output",
    [
        "Deployment complete: https://abc.bakery.pages.dev@evil.example/phish",  # userinfo: the host is evil.example
        "Deployment complete: https://abc.bakery.pages.dev.evil.example/",  # a longer host
        "Deployment complete: https://abc.bakery.pages.dev:8443/",  # another port
        "Deployment complete: https://other-project.pages.dev/",  # another account's project
        "Deployment complete: https://evil.example/#.pages.dev",
        "Deployment complete: https://abc.bakery.pages.dev\\@evil.example/",  # backslash: browsers read it as '/'
    ],
)
def test_a_forged_url_in_wranglers_output_is_never_recorded(output):
    url = pages_url(output, PROJECT)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.port is None and parts.username is None, url
    assert parts.hostname in ("bakery.pages.dev",) or (parts.hostname or "").endswith(".bakery.pages.dev"), url
    assert "evil" not in url and "\\" not in url and "@" not in url
