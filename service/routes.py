"""The query service's endpoints and its route table (:func:`routes`): searches run here, writes embedded
here, everything else passed through to the engine."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipelines.engine.errors import ApiError, from_response
from pipelines.engine.transport import encode_ndjson
from pipelines.settings import Settings
from pipelines.stale_vectors import warning_header
from service import feedback, index_models, security, writes
from service import search as search_mod
from service import source as source_mod
from service.errors import SearchError, error_body
from service.retrievers import MSEARCH_HEADER_PARAMS
from service.state import Polyseek

HEALTH_PATH = "/_polyseek/health"  # answered without an API key (container healthchecks, load balancers)
# headers of a passed-through request the engine must not see (OpenSearch rejects the compatible-with
# media types of an Elasticsearch client; the transport sets the content type; hop-by-hop headers
# belong to the client's connection; the API key is the service's)
PASSTHROUGH_DROP_HEADERS = frozenset({"host", "content-length", "accept", "content-type", "authorization",
                                      "connection", "accept-encoding", "transfer-encoding"})


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SearchError(400, "parsing_exception", f"request body is not valid JSON: {exc}") from exc


def _json_answer(data: Any, opts: search_mod.SearchOptions, status: int = 200) -> Response:
    """A JSON answer shaped by ``filter_path`` and ``pretty``."""
    if opts.filter_path:
        data = search_mod.filter_path(data, opts.filter_path)
    return Response(_json_bytes(data, opts.pretty), status_code=status, media_type="application/json")


def _json_bytes(data: Any, pretty: bool = False) -> bytes:
    """UTF-8 JSON; text holding lone surrogates (valid JSON escapes a client may send, and the engine
    stores and answers) stays escaped instead of failing the answer."""
    layout: dict[str, Any] = {"indent": 2} if pretty else {"separators": (",", ":")}
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, **layout)
        out = text.encode("utf-8")
    except UnicodeEncodeError:
        out = json.dumps(data, ensure_ascii=True, allow_nan=False, **layout).encode("ascii")
    return out + b"\n" if pretty else out


def _with_warnings(answer: Response, warnings: list[str]) -> Response:
    """``answer`` with one Elasticsearch-style ``Warning`` header per message (elasticsearch-py raises each
    as an ``ElasticsearchWarning``)."""
    for message in dict.fromkeys(warnings):
        answer.headers.append("warning", warning_header(message))
    return answer


def _default_index(settings: Settings) -> str:
    """The indices a search without an index covers: all of them, or those of the allow list."""
    return ",".join(settings.index_allow_list) if settings.index_allow_list else "_all"


async def search_endpoint(request: Request) -> Response:
    ps: Polyseek = request.app.state.polyseek
    index = request.path_params.get("index") or _default_index(ps.settings)
    body = search_mod.require_object(await _read_json(request))
    if not search_mod.needs_service(body):
        return await passthrough(request)
    body, opts = search_mod.apply_url_params(body, request.query_params, request.url.path)
    response, record = await ps.search(index, body, opts)
    search_id = uuid.uuid4().hex
    record = {**record, "search_id": search_id, "opaque_id": request.headers.get("x-opaque-id")}
    ps.log_query(index, record, 200)
    answer = _with_warnings(_json_answer(response, opts), record.get("warnings", []))
    answer.headers[feedback.SEARCH_ID_HEADER] = search_id
    return answer


async def feedback_endpoint(request: Request) -> Response:
    """``POST /_polyseek/feedback``: clicks/orders against logged searches (see :mod:`service.feedback`)."""
    ps: Polyseek = request.app.state.polyseek
    events = feedback.parse_feedback(await _read_json(request))
    for e in events:
        if e.index and not security.index_allowed(ps.settings, e.index):
            raise SearchError(403, "security_exception", f"index [{e.index}] is not allowed")
    if ps._log_tasks:  # this process's own query-log writes land first
        await asyncio.gather(*list(ps._log_tasks), return_exceptions=True)
    log_index = ps.settings.query_log_index
    lookup = feedback.log_lookup_query(events)

    async def searches() -> list[dict[str, Any]]:
        resp = await ps.engine.request("POST", f"/{log_index}/_search", json_body=lookup,
                                       params={"ignore_unavailable": "true"})
        return [h["_source"] for h in resp.json().get("hits", {}).get("hits", [])]

    try:
        docs = feedback.feedback_documents(events, await searches())
    except ApiError:
        await ps.engine.request("POST", f"/{log_index}/_refresh", params={"ignore_unavailable": "true"})
        docs = feedback.feedback_documents(events, await searches())
    hits: dict[str, list[dict[str, Any]]] = {}
    if lookups := feedback.doc_lookup(docs):  # the clicked documents' languages: one _msearch
        resp = await ps.engine.request("POST", "/_msearch",
                                       content=encode_ndjson(({"index": i}, b) for i, b in lookups))
        answers = resp.json().get("responses", [])  # an item the engine refused (no such index): "und"
        hits = {i: a.get("hits", {}).get("hits", []) for (i, _), a in zip(lookups, answers)}
    feedback.add_language_pairs(docs, hits)
    lines = encode_ndjson(({"index": {}}, d) for d in docs)
    resp = await ps.engine.request("POST", f"/{ps.settings.feedback_index}/_bulk", content=lines,
                                   params={"refresh": request.query_params.get("refresh", "false")})
    result = resp.json()
    if result.get("errors"):
        raise SearchError(500, "exception", "feedback not stored: " + json.dumps(result["items"][0])[:300])
    return JSONResponse({"acknowledged": True, "recorded": len(docs)}, status_code=201)


# URL parameters of _msearch (all go to the engine's _msearch; the service applies the answer-shaping
# ones to the items it runs); the header keys of one item the service forwards: MSEARCH_HEADER_PARAMS
MSEARCH_PARAMS = frozenset({"max_concurrent_searches", "max_concurrent_shard_requests", "pre_filter_shard_size",
                            "search_type", "ccs_minimize_roundtrips", "rest_total_hits_as_int", "typed_keys",
                            "ignore_unavailable", "allow_no_indices", "expand_wildcards", "ignore_throttled",
                            "routing"})


def _parse_msearch(raw: bytes) -> list[tuple[dict, dict]]:
    """Header/body pairs of an ``_msearch`` body; malformed JSON fails the whole request, as in ES."""
    lines = [ln for ln in raw.split(b"\n") if ln.strip()]
    if len(lines) % 2:
        raise SearchError(400, "illegal_argument_exception", "msearch: every header line needs a body line")
    pairs = []
    for n, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SearchError(400, "x_content_parse_exception", f"[{n}:1] msearch line {n} is not JSON: {exc}") \
                from None
        if not isinstance(value, dict):
            raise SearchError(400, "x_content_parse_exception", f"[{n}:1] msearch line {n} must be an object")
        pairs.append(value)
    return list(zip(pairs[::2], pairs[1::2]))


def _msearch_index(head: dict, default_index: str | None, settings: Settings) -> str:
    """The index expression of one ``_msearch`` item (no index: all indices, or the allow list)."""
    index = head.get("index", head.get("indices", default_index))
    if isinstance(index, list):
        index = ",".join(str(i) for i in index)
    if index is not None and not isinstance(index, str):
        raise SearchError(400, "x_content_parse_exception", "[index] must be a string or an array of strings")
    index = index or _default_index(settings)
    if not security.index_allowed(settings, index) and index != _default_index(settings):
        raise SearchError(403, "security_exception", f"index [{index}] is not in the allow list")
    return index


async def _service_item(ps: Polyseek, index: str, head: dict, body: dict,
                        url_opts: search_mod.SearchOptions, warnings: list[str]) -> dict:
    """One ``_msearch`` item the service runs itself, as an item answer (errors included); its warnings
    are added to ``warnings`` (the response's headers, as Elasticsearch does for ``_msearch``)."""
    try:
        params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in head.items()
                  if k in MSEARCH_HEADER_PARAMS}
        opts = search_mod.SearchOptions(total_as_int=url_opts.total_as_int, typed_keys=url_opts.typed_keys,
                                        engine_params={**url_opts.engine_params, **params})
        if opts.total_as_int:
            body = search_mod.total_as_int_body(body)
        resp, record = await ps.search(index, body, opts)
        ps.log_query(index, record, 200)
        warnings += record.get("warnings", [])
        return {**resp, "status": 200}
    except ApiError as exc:
        return error_body(exc.status, exc.error_type, exc.reason)


async def msearch_endpoint(request: Request) -> Response:
    """``_msearch``: items with retrievers or hybrid run here, the others in one engine ``_msearch``."""
    ps: Polyseek = request.app.state.polyseek
    started = time.perf_counter()
    default_index = request.path_params.get("index")
    url_opts = search_mod.SearchOptions()
    for name, value in request.query_params.multi_items():
        if name == "rest_total_hits_as_int":
            url_opts.total_as_int = search_mod._bool_param(name, value)
        elif name == "typed_keys":
            url_opts.typed_keys = search_mod._bool_param(name, value)
        elif name == "pretty":
            url_opts.pretty = search_mod._bool_param(name, value)
        elif name == "filter_path":
            url_opts.filter_path = value
        elif name in search_mod.FORWARDED_PARAMS:
            url_opts.engine_params[name] = value
        elif name not in MSEARCH_PARAMS | search_mod.FORMAT_PARAMS:
            raise SearchError(400, "illegal_argument_exception",
                              f"request [{request.url.path}] contains unrecognized parameter: [{name}]")
    pairs = _parse_msearch(await request.body())
    responses: list[Any] = [None] * len(pairs)
    warnings: list[str] = []
    service_jobs, engine_items = [], []
    for head, body in pairs:  # the engine refuses an unknown header key for the whole request
        unknown = set(head) - MSEARCH_HEADER_PARAMS - {"index", "indices"}
        if unknown and search_mod.needs_service(body):
            raise SearchError(400, "illegal_argument_exception",
                              f"key [{sorted(unknown)[0]}] is not supported in the metadata section")
    for i, (head, body) in enumerate(pairs):
        try:
            index = _msearch_index(head, default_index, ps.settings)
        except ApiError as exc:
            responses[i] = error_body(exc.status, exc.error_type, exc.reason)
            continue
        if search_mod.needs_service(body):
            service_jobs.append((i, _service_item(ps, index, head, body, url_opts, warnings)))
        else:
            engine_items.append((i, {k: v for k, v in head.items() if k != "indices"} | {"index": index},
                                 body))

    async def engine_part() -> None:
        if not engine_items:
            return
        ndjson = b"".join(json.dumps(part).encode() + b"\n" for _, head, body in engine_items
                          for part in (head, source_mod.search_body(body)))
        params = [(k, v) for k, v in request.query_params.multi_items() if k in MSEARCH_PARAMS]
        resp = await ps.engine.request("POST", "/_msearch", params=params or None, content=ndjson)
        data = resp.json()
        if resp.status >= 400 or not isinstance(data, dict) or "responses" not in data:
            item = from_response(resp.status, data).to_body()
            for i, _, _ in engine_items:
                responses[i] = item
            return
        for (i, _, body), item in zip(engine_items, data["responses"]):
            responses[i] = source_mod.hide(item, source_mod.fields_rule(body))

    async def service_part() -> None:
        for (i, _), item in zip(service_jobs, await asyncio.gather(*(job for _, job in service_jobs))):
            responses[i] = item

    await asyncio.gather(engine_part(), service_part())
    took = int((time.perf_counter() - started) * 1000)
    return _with_warnings(_json_answer({"took": took, "responses": responses}, url_opts), warnings)


def _queued(request: Request) -> bool:
    """Whether the client asked for the queued write mode (header ``X-Polyseek-Write: queued``)."""
    value = request.headers.get(writes.QUEUED_HEADER)
    if value is None:
        return False
    if value.strip().lower() not in ("queued", "sync"):
        raise SearchError(400, "illegal_argument_exception",
                          f"header [{writes.QUEUED_HEADER}] must be [queued] or [sync], got [{value}]")
    return value.strip().lower() == "queued"


async def bulk_endpoint(request: Request) -> Response:
    """``_bulk``: every operation in order, with the engine's item answers (README "Write semantics")."""
    ps: Polyseek = request.app.state.polyseek
    wp, _ = writes.parse_params(request.query_params, request.url.path)
    ops = writes.parse_bulk(await request.body(), request.path_params.get("index"))
    security.check_write_indices(ps.settings, (op.index for op in ops))
    result = await writes.execute(ps, ops, wp, request.path_params.get("index"), _queued(request))
    return _json_answer(result, search_mod.SearchOptions(filter_path=wp.filter_path, pretty=wp.pretty))


async def doc_write_endpoint(request: Request) -> Response:
    """``PUT/POST /{index}/_doc[/{id}]``, ``/{index}/_create/{id}``, ``POST /{index}/_update/{id}``:
    one operation, answered as the engine answers it (queued mode: 202)."""
    ps: Polyseek = request.app.state.polyseek
    index = request.path_params["index"]
    path = request.url.path
    action = "create" if "/_create/" in path else "update" if "/_update/" in path else "index"
    if action != "update" and not (await request.body()).strip():
        raise SearchError(400, "parse_exception", "request body is required")
    body = await _read_json(request)
    op, wp = writes.single_op(action, index, request.path_params.get("id"), body, request.query_params, path)
    security.check_write_indices(ps.settings, [op.index])
    result = await writes.execute(ps, [op], wp, None, _queued(request))
    status, answer = writes.single_answer(result["items"][0])
    return _json_answer(answer, search_mod.SearchOptions(filter_path=wp.filter_path, pretty=wp.pretty), status)


async def settled_passthrough(request: Request) -> Response:
    """GET/HEAD/DELETE of one document, ``_refresh``: first wait for what this service queued for
    it (queued mode), then the engine answers as it would (real-time GET, per-id order)."""
    ps: Polyseek = request.app.state.polyseek
    index, doc_id = request.path_params.get("index"), request.path_params.get("id")
    tasks = ps.pending.tasks_for([(index, doc_id)]) if doc_id is not None else ps.pending.tasks_of_indices(index)
    await ps.pending.settle(tasks)
    return await passthrough(request)


async def ingest_status_endpoint(request: Request) -> Response:
    from pipelines.ingest.api import ingest_status

    index = request.path_params.get("index")
    return JSONResponse(await run_in_threadpool(ingest_status, index, request.app.state.polyseek.settings))


async def near_duplicates_endpoint(request: Request) -> Response:
    """``GET /{index}/_polyseek/near_duplicates``: pairs of documents under different ids whose semantic-id
    prefix (``level``, default 1) and cosine (``min_cosine``, default settings) say they are one product;
    ``same_lang=true`` keeps pairs in one language, ``size`` (default 100) caps the list."""
    from pipelines.ingest import semantic_ids

    ps: Polyseek = request.app.state.polyseek
    index = request.path_params["index"]
    params = dict(request.query_params)
    unknown = set(params) - {"level", "min_cosine", "same_lang", "size", "pretty"}
    if unknown:
        raise SearchError(400, "illegal_argument_exception",
                          f"request [{request.url.path}] contains unrecognized parameter: [{sorted(unknown)[0]}]")
    try:
        level = int(params.get("level", 1))
        size = int(params.get("size", 100))
        min_cosine = float(params["min_cosine"]) if "min_cosine" in params else None
    except ValueError as exc:
        raise SearchError(400, "illegal_argument_exception", f"bad parameter value: {exc}") from None
    same_lang = params.get("same_lang", "false")
    if same_lang not in ("true", "false", "") or level < 1 or size < 0:
        raise SearchError(400, "illegal_argument_exception",
                          "[level] must be >= 1, [size] >= 0 and [same_lang] true or false")

    def find() -> list[dict[str, Any]]:
        if not ps.engine_client.index_exists(index):
            raise SearchError(404, "index_not_found_exception", f"no such index [{index}]", index=index)
        try:
            pairs = semantic_ids.near_duplicates(ps.engine_client, index, level=level, min_cosine=min_cosine,
                                                 same_lang=same_lang != "false", limit=size)
        except LookupError as exc:
            raise SearchError(400, "illegal_argument_exception", str(exc)) from None
        return [p.as_dict() for p in pairs]

    pairs = await run_in_threadpool(find)
    return JSONResponse({"index": index, "level": level,
                         "min_cosine": ps.settings.near_duplicate_cosine if min_cosine is None else min_cosine,
                         "count": len(pairs), "pairs": pairs})


async def health_endpoint(request: Request) -> Response:
    """``GET /_polyseek/health``: 200 whenever the service answers, with whether the engine is reachable.

    Liveness, not readiness: a service whose engine is away is up (it answers 503 per request and
    recovers by itself), so a container is not restarted for the engine's sake. No API key needed;
    it tells nothing but up/down and the cluster's colour.
    """
    ps: Polyseek = request.app.state.polyseek
    return JSONResponse({"status": "up", "engine": await ps.engine_health()})


async def passthrough(request: Request) -> Response:
    """Forward the request to the engine (after the guards) and relay its answer; where the answer
    carries documents, their ``_source`` is the client's document (:mod:`service.source`: filters
    rewritten on the way in, stored documents replaced on the way out, ``filter_path`` applied after)."""
    ps: Polyseek = request.app.state.polyseek
    path = request.url.path
    body = await request.body()
    params = list(request.query_params.multi_items())
    documents = source_mod.carries_source(path)
    fmt = search_mod.SearchOptions()
    rule = None
    if documents:
        fmt.filter_path = next((v for k, v in params if k == "filter_path"), None)
        fmt.pretty = any(k == "pretty" and v in ("", "true") for k, v in params)
        sent = source_mod.relay(path, body, params)
        body, rule = sent.content, sent.fields
        params = [(k, v) for k, v in sent.params if k != "filter_path"]
    forwarded = {k: v for k, v in request.headers.items() if k not in PASSTHROUGH_DROP_HEADERS}
    resp = await ps.engine.request(request.method, path, params=params, content=body or None, headers=forwarded)
    if index_models.changes_indices(request.method, path):
        ps.index_models.clear()
    headers = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "warning", "location")}
    if documents and request.method != "HEAD" and resp.body:
        hidden = source_mod.hide_answer(path, resp.body, rule)
        is_json = resp.headers.get("content-type", "").startswith("application/json")
        if hidden is not None or (fmt.filter_path and is_json):
            answer = _json_answer(resp.json() if hidden is None else hidden, fmt, resp.status)
            answer.headers.update({k: v for k, v in headers.items() if k.lower() != "content-type"})
            return answer
    return Response(resp.body, status_code=resp.status, headers=headers)


def routes(settings: Settings) -> list[Route]:
    """The service's routes: its own endpoints, then everything else passed through to the engine."""
    def guard(endpoint: security.Endpoint) -> security.Endpoint:
        return security.guarded(settings, endpoint)

    return [  # all but the health route behind the guards
        Route(HEALTH_PATH, health_endpoint, methods=["GET"]),
        Route("/_polyseek/ingest/status", guard(ingest_status_endpoint), methods=["GET"]),
        Route("/{index}/_polyseek/ingest/status", guard(ingest_status_endpoint), methods=["GET"]),
        Route("/_polyseek/feedback", guard(feedback_endpoint), methods=["POST"]),
        Route("/{index}/_polyseek/near_duplicates", guard(near_duplicates_endpoint), methods=["GET"]),
        Route("/_search", guard(search_endpoint), methods=["GET", "POST"]),
        Route("/{index}/_search", guard(search_endpoint), methods=["GET", "POST"]),
        Route("/_msearch", guard(msearch_endpoint), methods=["GET", "POST"]),
        Route("/{index}/_msearch", guard(msearch_endpoint), methods=["GET", "POST"]),
        Route("/_bulk", guard(bulk_endpoint), methods=["POST", "PUT"]),
        Route("/{index}/_bulk", guard(bulk_endpoint), methods=["POST", "PUT"]),
        Route("/{index}/_doc", guard(doc_write_endpoint), methods=["POST"]),
        Route("/{index}/_doc/{id}", guard(doc_write_endpoint), methods=["PUT", "POST"]),
        Route("/{index}/_create/{id}", guard(doc_write_endpoint), methods=["PUT", "POST"]),
        Route("/{index}/_update/{id}", guard(doc_write_endpoint), methods=["POST"]),
        Route("/{index}/_doc/{id}", guard(settled_passthrough), methods=["GET", "HEAD", "DELETE"]),
        Route("/{index}/_source/{id}", guard(settled_passthrough), methods=["GET", "HEAD"]),
        Route("/_refresh", guard(settled_passthrough), methods=["GET", "POST"]),
        Route("/{index}/_refresh", guard(settled_passthrough), methods=["GET", "POST"]),
        Route("/{path:path}", guard(passthrough), methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]),
    ]
