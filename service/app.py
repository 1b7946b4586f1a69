"""The Polyseek query service: the Elasticsearch REST API in front of the engine.

``create_app()`` builds the ASGI app; ``polyseek serve`` runs it with uvicorn.
Searches with retrievers or the hybrid shorthand run here; write paths go to
the ingest queue; everything else passes through to the engine.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import re
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipelines.encoders.cross import CrossEncoder, open_cross_encoder
from pipelines.encoders.dense import TextEncoder, open_encoder
from pipelines.engine.dialect import dialect_for, models_of
from pipelines.ingest.documents import detect_language
from pipelines.settings import Settings, get_settings
from service import search as search_mod
from service import writes
from service.engine_proxy import AsyncEngine
from service.errors import SearchError, error_response
from service.retrievers import SearchContext

log = logging.getLogger(__name__)
PRODUCT_HEADERS = {"X-Elastic-Product": "Elasticsearch"}
# engine endpoints refused unless allow_admin_passthrough (method, path regex)
ADMIN_ENDPOINTS = [(m, re.compile(p)) for m, p in [
    ("PUT", r"/_cluster/settings"), ("POST", r"/_cluster/reroute"), ("*", r"/_nodes/.*shutdown.*"),
    ("*", r"/_snapshot.*"), ("*", r"/_plugins/.*"), ("*", r"/_security.*"), ("DELETE", r"/[^/]+/?"),
    ("POST", r"/[^/]+/_(close|open|delete_by_query|update_by_query|forcemerge)"), ("*", r"/_all.*"),
    ("POST", r"/_reindex")]]
SCRIPT_ENDPOINTS = [re.compile(p) for p in (r"/_scripts.*", r"/_script_(context|language)",
                                            r"/([^/]+/)?_(search|msearch)/template", r"/_render.*")]


class Polyseek:
    """Process-wide state of the service: engine line, dialect, models (loaded on first use)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = AsyncEngine(settings.engine_url, timeout_s=settings.stage_timeout_s)
        self.dialect = dialect_for(settings.engine)
        self._dense: dict[str, TextEncoder] = {}
        self._cross: dict[str, CrossEncoder] = {}
        self._log_tasks: set[asyncio.Task] = set()

    def dense(self, model_id: str | None) -> TextEncoder:
        """The dense encoder named ``model_id`` (default: settings.dense_model)."""
        name = (model_id or self.settings.dense_model).split("@")[0].split("+")[0]
        if name not in self._dense:
            try:
                self._dense[name] = open_encoder(self.settings.resolved_model_dir, name,
                                                 self.settings.encoder_precision, threads=self.settings.encoder_threads)
            except FileNotFoundError as exc:
                raise SearchError(404, "resource_not_found_exception",
                                  f"Could not find model [{name}]: {exc}") from exc
        return self._dense[name]

    def cross(self, model_id: str | None) -> CrossEncoder:
        name = model_id or self.settings.reranker_model
        if not name:
            raise SearchError(400, "illegal_argument_exception",
                              "no reranker configured: give [inference_id] or set POLYSEEK_RERANKER_MODEL")
        if name not in self._cross:
            try:
                self._cross[name] = open_cross_encoder(self.settings.resolved_model_dir, name,
                                                       self.settings.encoder_precision)
            except (FileNotFoundError, ValueError) as exc:
                raise SearchError(404, "resource_not_found_exception",
                                  f"Could not find inference endpoint [{name}]: {exc}") from exc
        return self._cross[name]

    def hybrid_defaults(self, model: str | None) -> dict[str, Any]:
        """Defaults of the hybrid shorthand for an index embedded by ``model``."""
        s = self.settings
        return {"fields": s.hybrid_fields, "rank_window_size": s.rank_window_size, "rank_constant": s.rrf_rank_constant,
                "rerank": bool(s.reranker_model), "rerank_field": s.rerank_field, "rerank_window": s.rerank_window,
                "sparse": self.dense(model).has_sparse, "fusion": s.hybrid_fusion, "weights": s.hybrid_weights,
                "normalizer": s.hybrid_normalizer}

    async def index_model(self, index: str) -> str | None:
        """The dense model the index records in its mapping (read per search: after a reindex
        switches an alias, the next query already embeds with the new model)."""
        resp = await self.engine.send("GET", f"/{index}/_mapping", timeout_s=self.settings.stage_timeout_s)
        if resp.status_code != 200:
            return None  # the search itself reports a missing index
        found = models_of(resp.json())
        if len(found) > 1:
            raise SearchError(400, "illegal_argument_exception",
                              f"indices [{index}] were embedded by different models {sorted(found)}; "
                              "search them separately or give [model_id]")
        return found.pop() if found else None

    async def context(self, index: str) -> tuple[SearchContext, dict[str, Any]]:
        """A search context for ``index`` and the hybrid defaults of its model."""
        model = await self.index_model(index)
        ctx = SearchContext(
            engine=self.engine, dialect=self.dialect, index=index, timeout_s=self.settings.stage_timeout_s,
            encode_query=lambda text, model_id: self.dense(model_id or model).encode_query(text),
            rerank=lambda q, texts, model_id: self.cross(model_id).score(q, texts))
        return ctx, self.hybrid_defaults(model)

    def log_query(self, index: str, record: dict[str, Any], status: int) -> None:
        """Write one query-log record in the background; never fails the search."""
        if not self.settings.query_log:
            return
        task = asyncio.get_running_loop().create_task(self._write_log(index, record, status))
        self._log_tasks.add(task)
        task.add_done_callback(self._log_tasks.discard)

    async def _write_log(self, index: str, record: dict[str, Any], status: int) -> None:
        try:
            text = record.get("query")
            by_stage: dict[str, float] = {}
            for st in record.get("stages", []):
                by_stage[st["stage"]] = by_stage.get(st["stage"], 0.0) + st["took_ms"]
            doc = {"@timestamp": datetime.now(timezone.utc).isoformat(), "index": index, "status": status,
                   "lang": await run_in_threadpool(detect_language, text) if text else None,
                   "took_ms_by_stage": by_stage, **record}
            await self.engine.send("POST", f"/{self.settings.query_log_index}/_doc", json_body=doc)
        except Exception as exc:  # noqa: BLE001 - the log must never break a search
            log.warning("query log write failed: %r", exc)

    async def ensure_log_index(self) -> None:
        try:
            await self.engine.send("PUT", f"/{self.settings.query_log_index}",
                                   json_body=self.dialect.query_log_index_body())
        except SearchError as exc:
            log.warning("query log index not created: %s", exc.reason)


def _index_allowed(settings: Settings, index_expr: str) -> bool:
    if not settings.index_allow_list:
        return True
    return all(any(fnmatch.fnmatch(name, pat) for pat in settings.index_allow_list)
               for name in index_expr.split(","))


def _contains_script(value: Any) -> bool:
    if isinstance(value, dict):
        return any("script" in str(k) or _contains_script(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_script(v) for v in value)
    return False


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SearchError(400, "parsing_exception", f"request body is not valid JSON: {exc}") from exc


def _wait_requested(request: Request) -> bool:
    return request.query_params.get("refresh") in ("wait_for", "true", "")


async def search_endpoint(request: Request) -> Response:
    ps: Polyseek = request.app.state.polyseek
    index = request.path_params.get("index", "_all")
    body = search_mod.require_object(await _read_json(request))
    if not search_mod.needs_service(body):
        return await passthrough(request)
    ctx, defaults = await ps.context(index)
    response, record = await search_mod.execute(body, ctx, defaults)
    ps.log_query(index, record, 200)
    return JSONResponse(response)


async def msearch_endpoint(request: Request) -> Response:
    ps: Polyseek = request.app.state.polyseek
    default_index = request.path_params.get("index")
    lines = [ln for ln in (await request.body()).split(b"\n") if ln.strip()]
    if len(lines) % 2:
        raise SearchError(400, "illegal_argument_exception", "msearch: every header line needs a body line")
    responses = []
    for head_raw, body_raw in zip(lines[::2], lines[1::2]):
        try:
            head, body = json.loads(head_raw), json.loads(body_raw)
            index = head.get("index", default_index)
            if isinstance(index, list):
                index = ",".join(index)
            if not index:
                raise SearchError(400, "action_request_validation_exception", "msearch: index is missing")
            if not _index_allowed(ps.settings, index):
                raise SearchError(403, "security_exception", f"index [{index}] is not in the allow list")
            if search_mod.needs_service(body):
                ctx, defaults = await ps.context(index)
                resp, record = await search_mod.execute(body, ctx, defaults)
                ps.log_query(index, record, 200)
            else:
                resp = await ps.engine.json("POST", f"/{index}/_search", body)
            responses.append({**resp, "status": 200})
        except json.JSONDecodeError as exc:
            responses.append({"error": {"type": "parsing_exception", "reason": str(exc)}, "status": 400})
        except SearchError as exc:
            responses.append({"error": {"type": exc.error_type, "reason": exc.reason}, "status": exc.status})
    return JSONResponse({"took": 0, "responses": responses})


async def bulk_endpoint(request: Request) -> Response:
    ps: Polyseek = request.app.state.polyseek
    ops = writes.parse_bulk(await request.body(), request.path_params.get("index"))
    for _, index, _, _ in ops:
        if not _index_allowed(ps.settings, index):
            raise SearchError(403, "security_exception", f"index [{index}] is not in the allow list")
    return JSONResponse(await writes.bulk(ps.engine, ops, _wait_requested(request)))


async def doc_write_endpoint(request: Request) -> Response:
    """PUT/POST /{index}/_doc[/{id}] and /{index}/_create/{id}: one document through the queue."""
    ps: Polyseek = request.app.state.polyseek
    index = request.path_params["index"]
    doc_id = request.path_params.get("id")
    source = await _read_json(request)
    action = "create" if "/_create/" in request.url.path else "index"
    result = await writes.bulk(ps.engine, [(action, index, doc_id, source)], _wait_requested(request))
    (item,) = result["items"][0].values()
    if "error" in item:
        return error_response(item["status"], item["error"]["type"], item["error"]["reason"])
    return JSONResponse({k: v for k, v in item.items() if k != "_polyseek_tasks"} | {"_shards": {
        "total": 1, "successful": 1 if item["status"] == 201 else 0, "failed": 0}}, status_code=item["status"])


async def ingest_status_endpoint(request: Request) -> Response:
    from pipelines.ingest.api import ingest_status

    index = request.path_params.get("index")
    return JSONResponse(await run_in_threadpool(ingest_status, index, request.app.state.polyseek.settings))


async def passthrough(request: Request) -> Response:
    """Forward the request to the engine unchanged (after the guards) and relay its answer."""
    ps: Polyseek = request.app.state.polyseek
    body = await request.body()
    resp = await ps.engine.send(request.method, request.url.path, params=list(request.query_params.multi_items()),
                                content=body or None, headers=dict(request.headers))
    headers = {k: v for k, v in resp.headers.items()
               if k.lower() in ("content-type", "warning", "location")}
    return Response(resp.content, status_code=resp.status_code, headers=headers)


def _guard(request: Request, settings: Settings) -> None:
    """Auth, index allow-list, admin and script endpoints, request size."""
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
    if first and not first.startswith("_") and not _index_allowed(settings, first):
        raise SearchError(403, "security_exception", f"index [{first}] is not in the allow list")
    if not settings.allow_admin_passthrough:
        for method, pattern in ADMIN_ENDPOINTS:
            if method in ("*", request.method) and pattern.fullmatch(path):
                raise SearchError(403, "security_exception",
                                  f"[{request.method} {path}] is disabled on this service (allow_admin_passthrough)")
    if not settings.allow_scripts and any(p.fullmatch(path) for p in SCRIPT_ENDPOINTS):
        raise SearchError(403, "security_exception", f"[{path}] is disabled on this service (allow_scripts)")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.polyseek = Polyseek(settings)
        await app.state.polyseek.ensure_log_index()
        yield
        await app.state.polyseek.engine.close()

    routes = [
        Route("/_polyseek/ingest/status", ingest_status_endpoint, methods=["GET"]),
        Route("/{index}/_polyseek/ingest/status", ingest_status_endpoint, methods=["GET"]),
        Route("/_search", search_endpoint, methods=["GET", "POST"]),
        Route("/{index}/_search", search_endpoint, methods=["GET", "POST"]),
        Route("/_msearch", msearch_endpoint, methods=["GET", "POST"]),
        Route("/{index}/_msearch", msearch_endpoint, methods=["GET", "POST"]),
        Route("/_bulk", bulk_endpoint, methods=["POST", "PUT"]),
        Route("/{index}/_bulk", bulk_endpoint, methods=["POST", "PUT"]),
        Route("/{index}/_doc", doc_write_endpoint, methods=["POST"]),
        Route("/{index}/_doc/{id}", doc_write_endpoint, methods=["PUT", "POST"]),
        Route("/{index}/_create/{id}", doc_write_endpoint, methods=["PUT", "POST"]),
        Route("/{path:path}", passthrough, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    async def elasticsearch_manners(request: Request, call_next):
        """Guards, ES error shape for everything raised, and the product header on every answer."""
        try:
            _guard(request, settings)
            if not settings.allow_scripts and request.method in ("POST", "PUT", "GET") \
                    and request.url.path.endswith(("_search", "_msearch", "_count")):
                body = await request.body()
                if b"script" in body and _contains_script(_loads_lenient(body)):
                    raise SearchError(403, "security_exception", "scripts are disabled on this service (allow_scripts)")
            response = await call_next(request)
        except SearchError as exc:
            response = error_response(exc.status, exc.error_type, exc.reason)
            for k, v in exc.extra.get("header", {}).items():
                response.headers[k] = v
        except Exception as exc:  # noqa: BLE001 - the client gets an ES-shaped 500
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = error_response(500, "exception", f"{type(exc).__name__}: {exc}")
        response.headers.update(PRODUCT_HEADERS)
        return response

    return Starlette(routes=routes, lifespan=lifespan,
                     middleware=[Middleware(BaseHTTPMiddleware, dispatch=elasticsearch_manners)])


def _loads_lenient(body: bytes) -> Any:
    """The JSON (or the parseable NDJSON lines) of a body, for the script check."""
    out = []
    for chunk in [body, *body.split(b"\n")]:
        try:
            out.append(json.loads(chunk))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return out
