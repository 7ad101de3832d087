"""Whether this machine reaches the internet, asked once when `morgus up --local-model` or the local demo starts
a worker: a model offered `search_web`/`fetch_url` with no route out spends its turns on calls that can only fail
(a 1.5B model planned "fetch the bakery's site" on this offline machine and built nothing), and a local model is
exactly what an offline machine runs. Workers started otherwise keep MORGUS_OFFLINE as configured."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from rich.console import Console

from morgus.config import Settings

PROBE_HOST = ("html.duckduckgo.com", 443)  # the default search provider's endpoint


def internet_reachable(
    address: tuple[str, int] = PROBE_HOST,
    timeout_s: float = 3.0,
    connect: Callable[..., socket.socket] = socket.create_connection,
) -> bool:
    """Whether a TCP connection to `address` opens within `timeout_s`, name lookup included. The socket's timeout
    bounds only each connect: the lookup before it has none (a resolver that never answers held `morgus up` for
    its own timeouts and retries, 5 s × attempts × servers) and each of several addresses got the whole timeout
    again. So the probe runs on a daemon thread that is left behind when it has not answered in time."""
    answered = threading.Event()
    reached: list[bool] = []

    def probe() -> None:
        try:
            with connect(address, timeout=timeout_s):
                reached.append(True)
        except Exception:  # noqa: BLE001 - no DNS, no route, refused, timed out, a name IDNA refuses: not reachable
            pass
        finally:
            answered.set()

    threading.Thread(target=probe, name="morgus-internet-probe", daemon=True).start()
    return answered.wait(timeout_s) and bool(reached)


def offline_env(settings: Settings, console: Console) -> dict[str, str]:
    """{"MORGUS_OFFLINE": "1"} for the worker when the web cannot be reached (said once), else {}. MORGUS_OFFLINE set
    either way is the user's word and is kept: the probe is a direct connection, and a machine whose only way out
    is an HTTPS proxy (which the web tools' client follows) has no other way to keep search_web and fetch_url."""
    if settings.offline or "offline" in settings.model_fields_set or internet_reachable():
        return {}
    console.print(
        "No internet route from this machine: search_web and fetch_url are not offered to the model "
        "(MORGUS_OFFLINE=1 for this worker; set MORGUS_OFFLINE=0 to offer them anyway, e.g. behind a proxy).",
        markup=False,
    )
    return {"MORGUS_OFFLINE": "1"}
