"""The service's guards: the API key, the index allow-list, admin and script endpoints, the request size and
scripts in search bodies. :func:`guarded` puts an endpoint behind them; a refusal raises a
:class:`~service.errors.SearchError`, which the app's exception handlers answer."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipelines.settings import Settings
from service.errors import SearchError

# engine endpoints refused unless allow_admin_passthrough (method, path regex)
ADMIN_ENDPOINTS = [(m, re.compile(p)) for m, p in [
    ("PUT", r"/_cluster/settings"), ("POST", r"/_cluster/reroute"), ("*", r"/_nodes/.*shutdown.*"),
    ("*", r"/_snapshot.*"), ("*", r"/_plugins/.*"), ("*", r"/_security.*"), ("DELETE", r"/[^/]+/?"),
    ("POST", r"/[^/]+/_(close|open|delete_by_query|update_by_query|forcemerge)"), ("*", r"/_all.*"),
    ("POST", r"/_reindex")]]
SCRIPT_ENDPOINTS = [re.compile(p) for p in (r"/_scripts.*", r"/_script_(context|language)",
                                            r"/([^/]+/)?_(search|msearch)/template", r"/_render.*")]

Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(settings: Settings, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the service's guards (:func:`guard`); a refusal raises, and the exception
    handlers answer it."""

    @functools.wraps(endpoint)
    async def guarded_endpoint(request: Request) -> Response:
        await guard(request, settings)
        return await endpoint(request)

    return guarded_endpoint


async def guard(request: Request, settings: Settings) -> None:
    """Auth, index allow-list, admin and script endpoints, request size, scripts in search bodies."""
    if settings.api_keys:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "apikey" or token not in settings.api_keys:
            raise SearchError(401, "security_exception", "missing or invalid API key",
                              header={"WWW-Authenticate": "ApiKey"})
    size = int(request.headers.get("content-length") or 0)
    if size > settings.max_request_bytes:
        raise SearchError(413, "content_too_long_exception",
                          f"request of {size} bytes exceeds the limit of {settings.max_request_bytes}")
    path = request.url.path
    first = path.strip("/").split("/")[0]
    if first and not first.startswith("_") and not index_allowed(settings, first):
        raise SearchError(403, "security_exception", f"index [{first}] is not in the allow list")
    if not settings.allow_admin_passthrough:
        for method, pattern in ADMIN_ENDPOINTS:
            if method in ("*", request.method) and pattern.fullmatch(path):
                raise SearchError(403, "security_exception",
                                  f"[{request.method} {path}] is disabled on this service (allow_admin_passthrough)")
    if not settings.allow_scripts and any(p.fullmatch(path) for p in SCRIPT_ENDPOINTS):
        raise SearchError(403, "security_exception", f"[{path}] is disabled on this service (allow_scripts)")
    if not settings.allow_scripts and request.method in ("POST", "PUT", "GET") \
            and path.endswith(("_search", "_msearch", "_count")):
        body = await request.body()  # kept on the request: the endpoint reads it again
        if b"script" in body and _contains_script(_loads_lenient(body)):
            raise SearchError(403, "security_exception", "scripts are disabled on this service (allow_scripts)")


def index_allowed(settings: Settings, index_expr: str) -> bool:
    """Whether every index of ``index_expr`` (comma-separated) matches the allow list (none: all are allowed)."""
    if not settings.index_allow_list:
        return True
    return all(any(fnmatch.fnmatch(name, pat) for pat in settings.index_allow_list)
               for name in index_expr.split(","))


def check_write_indices(settings: Settings, indices: Iterable[str]) -> None:
    """Refuse (403) a write to an index outside the allow list."""
    for index in indices:
        if not index_allowed(settings, index):
            raise SearchError(403, "security_exception", f"index [{index}] is not in the allow list")


def _contains_script(value: Any) -> bool:
    """Whether a parsed body names a script anywhere (a key holding ``script``)."""
    if isinstance(value, dict):
        return any("script" in str(k) or _contains_script(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_script(v) for v in value)
    return False


def _loads_lenient(body: bytes) -> Any:
    """The JSON (or the parseable NDJSON lines) of a body, for the script check."""
    out = []
    for chunk in [body, *body.split(b"\n")]:
        try:
            out.append(json.loads(chunk))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return out
