"""search_web and fetch_url: research from the worker host (httpx, selectolax), with an SSRF guard.

fetch_url refuses loopback, private, link-local (cloud metadata, 169.254.169.254), multicast and reserved
addresses after DNS resolution and again on every redirect, unless MORGUS_FETCH_ALLOW (settings.fetch_allow)
lists the address range or host (comma-separated CIDRs or hostnames). The check happens before each connection; a DNS answer that
changes between the check and the connection (rebinding) is not covered: run workers behind an egress proxy
where that matters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import Field
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from morgus.activities.tools.registry import ToolArgs, ToolContext, tool
from morgus.activities.tools.workspace import ToolError
from morgus.config import Settings
from morgus.tls import tls_context

MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_TEXT_CHARS = 20_000
TIMEOUT = httpx.Timeout(20.0, connect=10.0)
USER_AGENT = "Morgus/0.1 (+https://github.com/morgus)"
DEFAULT_BRAVE_URL = "https://api.search.brave.com"
DEFAULT_DUCKDUCKGO_URL = "https://html.duckduckgo.com"


# ---------------------------------------------------------------- SSRF guard


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _allowed_ranges(fetch_allow: str | None) -> tuple[list[IPNetwork], set[str]]:
    nets: list[IPNetwork] = []
    hosts: set[str] = set()
    for item in (fetch_allow or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return nets, hosts


def _forbidden(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified


async def check_url(url: str, fetch_allow: str | None = None) -> None:
    """Raise ToolError unless `url` is http(s) and every address its host resolves to is public (or allowed by
    `fetch_allow`, the MORGUS_FETCH_ALLOW list)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"only http and https URLs can be fetched, not {url!r}")
    host = parts.hostname.lower()
    nets, hosts = _allowed_ranges(fetch_allow)
    if host in hosts:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror:
        raise ToolError(f"cannot resolve host {host!r}") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if _forbidden(ip) and not any(ip in n for n in nets):
            raise ToolError(f"refusing to fetch {url}: {host} resolves to {ip}, a private/loopback/link-local address")


# ---------------------------------------------------------------- fetch


class FetchUrlArgs(ToolArgs):
    url: str = Field(min_length=1, max_length=4000, description="An http(s) URL.")


@dataclass
class Page:
    url: str
    status: int
    content_type: str
    body: bytes
    truncated: bool


async def fetch(url: str, *, fetch_allow: str | None = None, max_bytes: int = MAX_BYTES) -> Page:
    """GET with redirects followed by hand, so every hop passes the SSRF guard."""
    tls = await tls_context()
    async with httpx.AsyncClient(
        timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT}, verify=tls
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            await check_url(url, fetch_allow)
            async with client.stream("GET", url) as resp:
                if resp.is_redirect and resp.headers.get("location"):
                    url = urljoin(url, resp.headers["location"])
                    continue
                body = bytearray()
                truncated = False
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        del body[max_bytes:]
                        truncated = True
                        break
                return Page(
                    str(resp.url), resp.status_code, resp.headers.get("content-type", ""), bytes(body), truncated
                )
    raise ToolError(f"too many redirects (more than {MAX_REDIRECTS})")


def _squash(text: str) -> str:
    """Inline text as a reader sees it: one space between words, whatever the markup did."""
    return " ".join(text.split())


def html_to_text(html: str, base_url: str) -> dict[str, Any]:
    tree = HTMLParser(html)
    title = tree.css_first("title")
    for node in tree.css("script, style, noscript, svg, nav, footer, header, form, iframe"):
        node.decompose()
    main = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    text = main.text(separator="\n", strip=True) if main else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    links = []
    for a in main.css("a[href]") if main else []:
        href = a.attributes.get("href") or ""
        label = _squash(a.text())
        if href and not href.startswith(("#", "javascript:", "mailto:")) and label:
            links.append((label[:80], urljoin(base_url, href)))
    return {"title": title.text(strip=True) if title else "", "text": "\n".join(lines), "links": links[:40]}


@tool("fetch_url", FetchUrlArgs, "Fetch a web page and return its title, readable text and links.")
async def fetch_url(ctx: ToolContext, args: FetchUrlArgs) -> str:
    try:
        page = await fetch(args.url, fetch_allow=ctx.settings.fetch_allow)
    except httpx.HTTPError as e:
        raise ToolError(f"fetching {args.url} failed: {type(e).__name__}: {e}") from None
    head = f"URL: {page.url}\nStatus: {page.status}\nContent-Type: {page.content_type or 'unknown'}\n"
    if page.truncated:
        head += f"(only the first {MAX_BYTES} bytes were read)\n"
    ctype = page.content_type.split(";")[0].strip().lower()
    charset = httpx.Response(200, headers={"content-type": page.content_type}).charset_encoding or "utf-8"
    if ctype in ("text/html", "application/xhtml+xml") or (not ctype and page.body.lstrip()[:1] == b"<"):
        doc = html_to_text(page.body.decode(charset, errors="replace"), page.url)
        links = "\n".join(f"- {label}: {href}" for label, href in doc["links"])
        body = f"Title: {doc['title']}\n\n{doc['text']}" + (f"\n\nLinks:\n{links}" if links else "")
    elif ctype.startswith("text/") or ctype in ("application/json", "application/xml") or ctype.endswith("+json"):
        body = page.body.decode(charset, errors="replace")
    else:
        return head + f"\n[binary content, {len(page.body)} bytes, not shown]"
    if len(body) > MAX_TEXT_CHARS:
        body = body[:MAX_TEXT_CHARS] + f"\n[... truncated at {MAX_TEXT_CHARS} characters]"
    return head + "\n" + body


# ---------------------------------------------------------------- search


class SearchWebArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=500, description="What to search for.")
    max_results: int = Field(default=5, ge=1, le=20)


@dataclass
class SearchResult:
    title: str
    url: str
    snippet: str


async def _get(url: str, **kwargs: Any) -> httpx.Response:
    tls = await tls_context()
    async with httpx.AsyncClient(
        timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, follow_redirects=True, verify=tls
    ) as client:
        resp = await client.get(url, **kwargs)
    if resp.status_code >= 400:
        raise ToolError(f"the search provider answered HTTP {resp.status_code}: {resp.text[:200]}")
    return resp


async def search_searxng(settings: Settings, query: str, n: int) -> list[SearchResult]:
    base = settings.searxng_url
    if not base:
        raise ToolError("MORGUS_SEARCH_PROVIDER=searxng needs MORGUS_SEARXNG_URL (your SearXNG instance)")
    data = (await _get(f"{base.rstrip('/')}/search", params={"q": query, "format": "json"})).json()
    return [
        SearchResult(r.get("title", ""), r.get("url", ""), r.get("content", "")) for r in data.get("results", [])[:n]
    ]


async def search_brave(settings: Settings, query: str, n: int) -> list[SearchResult]:
    key = settings.brave_api_key
    if not key:
        raise ToolError("MORGUS_SEARCH_PROVIDER=brave needs BRAVE_API_KEY")
    base = settings.brave_url or DEFAULT_BRAVE_URL
    resp = await _get(
        f"{base.rstrip('/')}/res/v1/web/search",
        params={"q": query, "count": n},
        headers={"X-Subscription-Token": key, "Accept": "application/json"},
    )
    results = resp.json().get("web", {}).get("results", [])
    return [SearchResult(r.get("title", ""), r.get("url", ""), r.get("description", "")) for r in results[:n]]


async def search_duckduckgo(settings: Settings, query: str, n: int) -> list[SearchResult]:
    """The keyless default: DuckDuckGo's HTML endpoint."""
    base = settings.duckduckgo_url or DEFAULT_DUCKDUCKGO_URL
    tree = HTMLParser((await _get(f"{base.rstrip('/')}/html/", params={"q": query})).text)
    results = []
    for node in tree.css(".result"):
        link = node.css_first("a.result__a")
        if link is None:
            continue
        snippet = node.css_first(".result__snippet")
        results.append(
            SearchResult(
                _squash(link.text()),
                _ddg_target(link.attributes.get("href") or ""),
                _squash(snippet.text()) if snippet else "",
            )
        )
        if len(results) >= n:
            break
    return results


def _ddg_target(href: str) -> str:
    """DuckDuckGo wraps results in a redirect (`/l/?uddg=<url>`); return the real URL."""
    from urllib.parse import parse_qs

    parts = urlsplit(href)
    target = parse_qs(parts.query).get("uddg")
    return target[0] if target else (href if parts.scheme else urljoin("https://duckduckgo.com", href))


PROVIDERS = {"duckduckgo": search_duckduckgo, "searxng": search_searxng, "brave": search_brave}


@tool("search_web", SearchWebArgs, "Search the web; returns titles, URLs and snippets.")
async def search_web(ctx: ToolContext, args: SearchWebArgs) -> str:
    name = ctx.settings.search_provider  # validated by Settings: one of PROVIDERS
    try:
        results = await PROVIDERS[name](ctx.settings, args.query, args.max_results)
    except httpx.HTTPError as e:
        raise ToolError(f"search via {name} failed: {type(e).__name__}: {e}") from None
    if not results:
        return f"no results for {args.query!r}"
    return "\n\n".join(f"{i}. {r.title}\n   {r.url}\n   {r.snippet}" for i, r in enumerate(results, 1))
