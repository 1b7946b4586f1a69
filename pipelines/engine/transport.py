"""The one transport to the engine, on ``elastic-transport`` (what elasticsearch-py itself uses).

:class:`AsyncEngine` is the service's (httpx, asyncio); :class:`Engine` is its thin synchronous face
for the CLI, the ingest workers and the launcher (urllib3, elastic-transport's default node). Both
share everything but the ``await`` (:class:`_EngineBase`): elastic-transport's node pool and its
retries on connection errors and on 429/502/503/504 (with backoff from elastic-transport 9 on; 8.x,
which elasticsearch-py 8 pins, retries at once), one :class:`~pipelines.engine.breaker.CircuitBreaker`
per lane, and one mapping of failures to :mod:`pipelines.engine.errors`.

Bodies travel as bytes both ways: the serializers are replaced by a raw pass-through, so the
query service relays what the engine answered byte for byte (any content type, NDJSON, HEAD),
and :meth:`EngineResponse.json` parses when a caller wants JSON.

What elastic-transport does not do, and the shims here add:

* raw bodies: its serializers encode requests and decode answers by content type (and refuse types
  they do not know, e.g. ``application/yaml``); :class:`_RawSerializers` makes every type bytes;
* a timeout that bounds the engine's answer, not the wait for a pooled connection (its httpx node
  gives httpx one number for both; under a burst of clients requests queue for the pool as they
  would in the engine's search queue, and a pool timeout would fail them as if the engine were slow);
* the circuit breaker (elasticsearch-py has none; its node pool only marks nodes dead);
* query parameters (the transport takes a target, the caller's path and query string).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Self
from urllib.parse import urlencode

import httpx
from elastic_transport import (
    AsyncTransport,
    ConnectionError,
    ConnectionTimeout,
    HttpHeaders,
    HttpxAsyncHttpNode,
    NodeConfig,
    SerializationError,
    Serializer,
    SerializerCollection,
    Transport,
    Urllib3HttpNode,
)
from elastic_transport.client_utils import url_to_node_config

from pipelines.engine.breaker import CircuitBreaker
from pipelines.engine.errors import CircuitOpen, EngineTimeout, EngineUnavailable, from_response

Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None

RETRY_ON_STATUS = (429, 502, 503, 504)  # elastic-transport's (and elasticsearch-py's) default
BREAKER_FAILURE_STATUSES = frozenset({502, 503})  # the engine (or a proxy in front of it) says it is away
# backoff between attempts: elastic-transport 9 sleeps base * 2**attempt (jittered, capped); 8.x retries at once
_BACKOFF = ({"retry_backoff_base": 0.1, "retry_backoff_cap": 2.0}
            if "retry_backoff_base" in inspect.signature(Transport.__init__).parameters else {})


@dataclass(frozen=True)
class EngineResponse:
    """The engine's answer: status, headers and the body as the engine sent it."""

    status: int
    headers: HttpHeaders
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (None when empty); ``ValueError`` when it is not JSON."""
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _Raw(Serializer):
    """Bytes in, bytes out: the transport neither encodes requests nor decodes answers."""

    mimetype = "*/*"

    def loads(self, data: bytes) -> bytes:
        return data

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data)
        raise SerializationError(f"the engine transport sends bytes, not {type(data).__name__}")


class _RawSerializers(SerializerCollection):
    """Every mimetype (the engine's JSON, NDJSON, text, YAML, CBOR...) passes through raw."""

    def __init__(self) -> None:
        super().__init__({"application/json": _Raw()})

    def get_serializer(self, mimetype: str | None) -> Serializer:
        return self.default_serializer


_UNSET: Any = object()


class _PoolWaitUnbounded:
    """An httpx client whose timeouts leave the wait for a pooled connection unbounded."""

    def __init__(self, client: httpx.AsyncClient, default_timeout: float | None):
        self._client = client
        self._default = default_timeout

    def request(self, method: str, url: str, *, timeout: float | None = _UNSET, **kw: Any) -> Any:
        seconds = self._default if timeout is _UNSET else timeout
        return self._client.request(method, url, timeout=httpx.Timeout(seconds, pool=None), **kw)

    def __getattr__(self, name: str) -> Any:  # aclose, ...
        return getattr(self._client, name)


class _AsyncNode(HttpxAsyncHttpNode):
    """elastic-transport's httpx node, with the pool wait left unbounded (see the module's notes)."""

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.client = _PoolWaitUnbounded(self.client, config.request_timeout)  # type: ignore[assignment]


def _target(path: str, params: Params) -> str:
    """``path`` with its query string (booleans as ``true``/``false``, as the engine spells them)."""
    path = path.replace("?", "%3F").replace("#", "%23")
    if not params:
        return path
    items = params.items() if isinstance(params, Mapping) else params
    pairs = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in items if v is not None]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def _content_type(path: str) -> str:
    return "application/x-ndjson" if path.rstrip("/").endswith(("_bulk", "_msearch")) else "application/json"


def encode_json(value: Any) -> bytes:
    """A JSON body as the engine gets it: compact UTF-8, or ASCII escapes where the text holds lone surrogates."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def encode_ndjson(pairs: Iterable[tuple[Any, Any]]) -> bytes:
    """A ``_bulk`` or ``_msearch`` body: each (action or header, body) pair as two :func:`encode_json` lines."""
    return b"".join(encode_json(head) + b"\n" + encode_json(body) + b"\n" for head, body in pairs)


class _EngineBase:
    """What the async and sync transports share: configuration, request shaping, outcomes."""

    _transport: Transport | AsyncTransport

    def __init__(self, url: str, *, timeout_s: float | None = 30.0, max_retries: int = 2,
                 breaker: CircuitBreaker | None = _UNSET, connections: int = 64):
        """``timeout_s`` bounds each answer (None: no bound); ``max_retries`` attempts after the first on
        connection errors and 429/502/503/504; ``breaker``: a new :class:`CircuitBreaker` unless given
        (``None``: none, e.g. the launcher's readiness probe)."""
        self.url = url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.breaker = CircuitBreaker() if breaker is _UNSET else breaker
        self.connections = connections

    def _node_config(self) -> NodeConfig:
        config = url_to_node_config(self.url, use_default_ports_for_scheme=True)
        return config.replace(request_timeout=self.timeout_s, connections_per_node=self.connections)

    def _transport_kwargs(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "retry_on_status": RETRY_ON_STATUS, "retry_on_timeout": False,
                "meta_header": False, **_BACKOFF}

    def options(self, *, breaker: CircuitBreaker | None = _UNSET, max_retries: int | None = None) -> Self:
        """A view on the same node pool with its own breaker (``None``: none) or retries, as
        elasticsearch-py's ``client.options()``: e.g. a lane for background writes whose failures
        must not open the circuit for searches. Closing a view closes the shared pool."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        if breaker is not _UNSET:
            view.breaker = breaker
        if max_retries is not None:
            view.max_retries = max_retries
        return view

    def _prepare(self, method: str, path: str, params: Params, content: bytes | None, json_body: Any,
                 headers: Mapping[str, str] | None, timeout_s: float | None) -> tuple[str, dict[str, Any]]:
        """The target and the keyword arguments of ``perform_request``; refuses while the circuit is open."""
        out_headers = HttpHeaders(headers or {})
        body = encode_json(json_body) if json_body is not None else content
        if body is not None:
            out_headers["content-type"] = _content_type(path)
        kw: dict[str, Any] = {"body": body, "headers": out_headers, "max_retries": self.max_retries}
        if timeout_s is not None:
            kw["request_timeout"] = timeout_s
        target = _target(path, params)
        if self.breaker is not None and not self.breaker.acquire():  # last: a claimed probe is always sent
            raise CircuitOpen(503, "circuit_breaking_exception", "engine unavailable (circuit open); retry later")
        return target, kw

    def _raise_failure(self, method: str, path: str, exc: BaseException) -> NoReturn:
        """Raise for a request that got no answer: a timeout (not a breaker failure), the engine away
        after the retries (one breaker failure), or anything else as it is (a claimed probe freed)."""
        if isinstance(exc, ConnectionTimeout):
            self._release()
            raise EngineTimeout(504, "timeout_exception", f"engine did not answer {method} {path} in time") from exc
        if isinstance(exc, ConnectionError):
            if self.breaker is not None:
                self.breaker.failure()
            raise EngineUnavailable(503, "unavailable_engine_exception", f"engine unavailable: {exc!r}") from exc
        self._release()
        raise exc

    def _answered(self, meta: Any, body: bytes | None) -> EngineResponse:
        if self.breaker is not None:
            if meta.status in BREAKER_FAILURE_STATUSES:
                self.breaker.failure()
            else:
                self.breaker.success()
        return EngineResponse(meta.status, meta.headers, body or b"")

    def _release(self) -> None:
        if self.breaker is not None:
            self.breaker.release()

    @staticmethod
    def _data(resp: EngineResponse, ok_statuses: Collection[int]) -> Any:
        """The parsed body; engine errors (other than ``ok_statuses``) raised as :mod:`pipelines.engine.errors`."""
        try:
            data = resp.json()
        except ValueError:
            data = {"error": resp.text[:500]}
        if resp.status >= 400 and (resp.status == 429 or resp.status >= 500 or resp.status not in ok_statuses):
            raise from_response(resp.status, data)
        return data


class AsyncEngine(_EngineBase):
    """The engine over asyncio: ``await engine.request(...)`` for raw answers, ``engine.json(...)`` for data."""

    def __init__(self, url: str, **kw: Any):
        super().__init__(url, **kw)
        self._transport = AsyncTransport([self._node_config()], node_class=_AsyncNode, **self._transport_kwargs())
        self._transport.serializers = _RawSerializers()

    async def request(self, method: str, path: str, *, params: Params = None, content: bytes | None = None,
                      json_body: Any = None, headers: Mapping[str, str] | None = None,
                      timeout_s: float | None = None) -> EngineResponse:
        """One request (retried by the transport); any status is returned as the engine answered.

        Raises :class:`~pipelines.engine.errors.EngineUnavailable` when no answer came (or the
        circuit is open), :class:`~pipelines.engine.errors.EngineTimeout` when it came too late.
        """
        target, kw = self._prepare(method, path, params, content, json_body, headers, timeout_s)
        try:
            meta, body = await self._transport.perform_request(method, target, **kw)
        except BaseException as exc:  # cancelled too: a claimed probe must be freed
            self._raise_failure(method, path, exc)
        return self._answered(meta, body)

    async def json(self, method: str, path: str, body: Any = None, *, params: Params = None,
                   content: bytes | None = None, ok_statuses: Collection[int] = (),
                   timeout_s: float | None = None) -> Any:
        """Send JSON (or a raw ``content``, e.g. NDJSON), return the parsed answer; engine errors other
        than ``ok_statuses`` raised (see :func:`~pipelines.engine.errors.from_response`)."""
        resp = await self.request(method, path, params=params, json_body=body, content=content, timeout_s=timeout_s)
        return self._data(resp, ok_statuses)

    async def close(self) -> None:
        await self._transport.close()


class Engine(_EngineBase):
    """The synchronous face of :class:`AsyncEngine`: the same requests, answers and errors, blocking."""

    def __init__(self, url: str, **kw: Any):
        super().__init__(url, **kw)
        self._transport = Transport([self._node_config()], node_class=Urllib3HttpNode, **self._transport_kwargs())
        self._transport.serializers = _RawSerializers()

    def request(self, method: str, path: str, *, params: Params = None, content: bytes | None = None,
                json_body: Any = None, headers: Mapping[str, str] | None = None,
                timeout_s: float | None = None) -> EngineResponse:
        """As :meth:`AsyncEngine.request`."""
        target, kw = self._prepare(method, path, params, content, json_body, headers, timeout_s)
        try:
            meta, body = self._transport.perform_request(method, target, **kw)
        except BaseException as exc:  # cancelled too: a claimed probe must be freed
            self._raise_failure(method, path, exc)
        return self._answered(meta, body)

    def json(self, method: str, path: str, body: Any = None, *, params: Params = None,
             content: bytes | None = None, ok_statuses: Collection[int] = (), timeout_s: float | None = None) -> Any:
        """As :meth:`AsyncEngine.json` (``content``: a raw body instead, e.g. NDJSON)."""
        resp = self.request(method, path, params=params, json_body=body, content=content, timeout_s=timeout_s)
        return self._data(resp, ok_statuses)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
