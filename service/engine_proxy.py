"""The service's asynchronous line to the engine: retries, a circuit breaker, timeouts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from service.errors import SearchError

# headers the engine must not see from an Elasticsearch client (OpenSearch rejects
# the compatible-with media types; hop-by-hop headers belong to this connection)
_DROP_REQUEST_HEADERS = {"host", "content-length", "accept", "content-type", "authorization", "connection",
                         "accept-encoding", "transfer-encoding"}


class CircuitBreaker:
    """Open after ``threshold`` consecutive failures; half-open again after ``reset_s``."""

    def __init__(self, threshold: int = 5, reset_s: float = 10.0):
        self.threshold = threshold
        self.reset_s = reset_s
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.reset_s

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


class AsyncEngine:
    """Send requests to the engine; raise :class:`SearchError` 503 when it is unavailable."""

    def __init__(self, base_url: str, timeout_s: float = 30.0, retries: int = 2):
        # the timeout bounds the engine's answer, not the wait for a free connection: under a burst of
        # clients, requests queue for the pool as they would in the engine's search queue
        self._http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout_s, pool=None),
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        self.retries = retries
        self.breaker = CircuitBreaker()

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, method: str, path: str, *, params: Any = None, content: bytes | None = None,
                   json_body: Any = None, headers: dict[str, str] | None = None,
                   timeout_s: float | None = None) -> httpx.Response:
        """One request with retry on connection errors (backoff 0.1 s, 0.2 s, ...)."""
        if not self.breaker.allow():
            raise SearchError(503, "circuit_breaking_exception", "engine unavailable (circuit open); retry later")
        out_headers = {k: v for k, v in (headers or {}).items() if k.lower() not in _DROP_REQUEST_HEADERS}
        if content is not None or json_body is not None:
            ndjson = path.rstrip("/").endswith(("_bulk", "_msearch"))
            out_headers["content-type"] = "application/x-ndjson" if ndjson else "application/json"
        timeout = httpx.Timeout(timeout_s, pool=None) if timeout_s else httpx.USE_CLIENT_DEFAULT
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                resp = await self._http.request(method, path, params=params, content=content, json=json_body,
                                                headers=out_headers, timeout=timeout)
            except httpx.TimeoutException as exc:
                # slow is not down: an engine busy with a burst answers late, and opening the circuit
                # would turn every other waiting client's request into a 503
                raise SearchError(504, "timeout_exception", f"engine did not answer {method} {path} in time") from exc
            except httpx.TransportError as exc:
                last = exc
                self.breaker.failure()
                await asyncio.sleep(0.1 * (2 ** attempt))
                continue
            if resp.status_code in (502, 503):
                self.breaker.failure()
            else:
                self.breaker.success()
            return resp
        raise SearchError(503, "unavailable_engine_exception", f"engine unavailable: {last!r}")

    async def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """Send JSON, return JSON; engine 4xx/5xx become :class:`SearchError` with its error."""
        resp = await self.send(method, path, json_body=body, **kw)
        data = resp.json() if resp.content else {}
        if resp.status_code >= 400:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            if isinstance(err, dict):
                raise SearchError(resp.status_code, err.get("type", "engine_exception"),
                                  err.get("reason", str(data)[:500]))
            raise SearchError(resp.status_code, "engine_exception", str(err))
        return data
