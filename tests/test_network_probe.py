"""The internet probe behind `morgus up --local-model` and the local demo (morgus/app/network.py), on real sockets."""

from __future__ import annotations

import io
import socket
import threading

from rich.console import Console

from morgus.app.network import PROBE_HOST, internet_reachable, offline_env
from morgus.config import Settings


def test_a_listening_address_is_reachable_and_a_closed_one_is_not():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert internet_reachable(("127.0.0.1", port))
    assert not internet_reachable(("127.0.0.1", port))  # closed now: refused
    assert not internet_reachable(("no-such-host.invalid", 443))  # no DNS answer


def test_offline_env_keeps_an_explicit_setting(tmp_path):
    out = io.StringIO()
    settings = Settings(MORGUS_OFFLINE="1", MORGUS_HOME=str(tmp_path))
    assert offline_env(settings, Console(file=out)) == {}  # already offline: nothing to add, nothing said
    assert out.getvalue() == ""


def test_a_lookup_that_never_answers_is_offline_and_a_bad_name_is_not_an_error():
    """Found by red-teaming: socket.create_connection's timeout does not cover the name lookup, so a resolver
    that never answers held `morgus up --local-model` (here: a connect that blocks until the test ends)."""
    release = threading.Event()

    def resolver_never_answers(address, timeout):
        release.wait()
        raise OSError("no answer")

    try:
        assert not internet_reachable(PROBE_HOST, timeout_s=0.2, connect=resolver_never_answers)
    finally:
        release.set()
    assert not internet_reachable(("a" * 300 + ".example", 443), timeout_s=2)  # IDNA refuses it: UnicodeError


def test_an_explicit_morgus_offline_0_is_kept(tmp_path):
    """Found by red-teaming: MORGUS_OFFLINE=0 was overridden by the probe (a direct connection), so a machine that
    reaches the web only through an HTTPS proxy could not keep search_web and fetch_url for its local model."""
    out = io.StringIO()
    settings = Settings(MORGUS_OFFLINE="0", MORGUS_HOME=str(tmp_path))
    assert offline_env(settings, Console(file=out)) == {}
    assert out.getvalue() == ""
