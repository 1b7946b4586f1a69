"""``_search`` with retrievers or the hybrid shorthand, answered in Elasticsearch's shape.

Every parameter Elasticsearch honours for ``_search`` is either honoured here or refused
with a 400 that names it; nothing is silently ignored.  URL parameters override the body
as they do in Elasticsearch (``size``, ``from``, ``_source*``, ``track_total_hits``,
``explain``, ``timeout``, ``sort``, ``stored_fields``, ``docvalue_fields``, ``version``,
``seq_no_primary_term``, ``track_scores``); ``rest_total_hits_as_int``, ``typed_keys``,
``filter_path`` and ``pretty`` shape the answer; index-resolution parameters (``routing``,
``preference``, ``ignore_unavailable``, ...) go to every engine request of the search.

Body keys, on the fused list of the retriever tree (the top ``window`` documents, where
``window = max(from + size, rank_window_size)``):

- ``min_score`` keeps hits whose fused score is at least the value;
- ``post_filter`` filters the hits after fusion, never the aggregations;
- ``sort`` on plain fields orders the fused list by those fields (the engine sorts the
  fused ids); hits then carry ``sort`` values and ``_score: null`` unless ``track_scores``.
  Sorting by ``_score`` descending is the default order; any other use of ``_score``
  is a 400;
- ``timeout`` bounds the whole search; on expiry the answer is 200 with
  ``timed_out: true`` and the hits found so far (none when retrieval did not finish);
- ``track_total_hits`` and ``hits.total``: see :func:`total_hits`;
- ``collapse`` groups the fused list by a keyword field (one hit per value, ``inner_hits``,
  the shopper's language as representative): see :mod:`service.collapse`.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.datastructures import QueryParams

from service import collapse as collapse_mod
from service import retrievers
from service import source as source_mod
from service.errors import SearchError, bad_request
from service.retrievers import MAX_WINDOW, Filter, Query, SearchContext

# URL parameters passed unchanged to every engine request of a service-run search
FORWARDED_PARAMS = frozenset({
    "routing", "preference", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "request_cache",
    "search_type", "allow_partial_search_results", "batched_reduce_size", "max_concurrent_shard_requests",
    "pre_filter_shard_size", "ccs_minimize_roundtrips", "ignore_throttled"})
# URL parameters that only format the answer
FORMAT_PARAMS = frozenset({"pretty", "human", "error_trace", "filter_path"})
_TIME_VALUE = re.compile(r"^(?:-1|0|(\d+)(nanos|micros|ms|s|m|h|d))$")
_TIME_UNITS_S = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass
class SearchOptions:
    """How to shape the answer of a service-run search (from URL parameters)."""

    total_as_int: bool = False
    typed_keys: bool = False
    engine_params: dict[str, str] = field(default_factory=dict)
    filter_path: str | None = None
    pretty: bool = False


class SourceFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    includes: str | list[str] | None = None
    include: str | list[str] | None = None
    excludes: str | list[str] | None = None
    exclude: str | list[str] | None = None
    exclude_vectors: bool | None = None  # Elasticsearch 9: false answers the stored document, vectors included


SortItem = str | dict[str, Any]


class SearchRequest(BaseModel):
    """The body of a service-run search; an unknown key is a 400 naming it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    retriever: dict[str, Any] | None = None
    query: Query | None = None
    from_: int = Field(0, alias="from")
    size: int = 10
    source: bool | str | list[str] | SourceFilter | None = Field(None, alias="_source")
    highlight: dict[str, Any] | None = None
    aggs: dict[str, Any] | None = None
    aggregations: dict[str, Any] | None = None
    explain: bool = False
    track_total_hits: bool | int | None = None
    track_scores: bool = False
    post_filter: Query | None = None
    min_score: float | None = None
    timeout: str | None = None
    sort: SortItem | list[SortItem] | None = None
    fields: list[str | dict[str, Any]] | None = None
    stored_fields: str | list[str] | None = None
    docvalue_fields: list[str | dict[str, Any]] | None = None
    version: bool | None = None
    seq_no_primary_term: bool | None = None
    collapse: collapse_mod.Collapse | None = None

    @field_validator("track_total_hits")
    @classmethod
    def _track(cls, value: bool | int | None) -> bool | int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value < -1:
            raise ValueError(f"[track_total_hits] parameter must be positive or equals to -1, got {value}")
        return False if value == -1 and not isinstance(value, bool) else value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_VALUE.match(value):
            raise ValueError(f"failed to parse [timeout] with value [{value}] as a time value: "
                             "unit is missing or unrecognized")
        return value

    @model_validator(mode="after")
    def _window(self) -> SearchRequest:
        for name, value in (("from", self.from_), ("size", self.size)):
            if value < 0:
                raise ValueError(f"[{name}] parameter cannot be negative, found [{value}]")
        if self.from_ + self.size > MAX_WINDOW:
            raise ValueError(f"Result window is too large, from + size must be less than or equal to "
                             f"[{MAX_WINDOW}] but was [{self.from_ + self.size}]")
        if self.aggs is not None and self.aggregations is not None:
            raise ValueError("Found two aggregation type definitions in [aggs] and [aggregations]")
        return self


def needs_service(body: dict[str, Any]) -> bool:
    """True when the request uses a feature the engine cannot run itself."""
    if "retriever" in body:
        return True
    query = body.get("query")
    return isinstance(query, dict) and "hybrid" in query


def parse_request(body: dict[str, Any]) -> SearchRequest:
    """The body validated; wrong keys or types -> 400 naming the key."""
    try:
        return SearchRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            raise bad_request(f"[{err['loc'][0]}] is not supported together with retrievers",
                              "illegal_argument_exception") from None
        if err["type"] == "value_error" and not err["loc"]:  # whole-request checks, worded as the engine's
            raise bad_request(err["msg"].removeprefix("Value error, "), "illegal_argument_exception") from None
        raise retrievers.parse_error(exc, "search") from None


def retriever_tree(req: SearchRequest, defaults: dict[str, Any]) -> tuple[dict, list[dict]]:
    """The validated retriever tree of a request and the filters to apply to every leaf."""
    if req.retriever is not None:
        if req.query is not None:
            raise bad_request("cannot specify [retriever] and [query] together", "illegal_argument_exception")
        return retrievers.parse(req.retriever), []
    query = req.query or {}
    if list(query) != ["hybrid"]:
        raise bad_request("[hybrid] must be the only query of the request; put filters in [hybrid.filter]")
    if not isinstance(query["hybrid"], dict):
        raise bad_request("[hybrid] must be an object", "x_content_parse_exception")
    tree = retrievers.parse(retrievers.expand_hybrid(query["hybrid"], defaults), "query.hybrid")
    flt: Filter | None = query["hybrid"].get("filter")
    return tree, flt if isinstance(flt, list) else ([flt] if flt else [])


def timeout_seconds(value: str | None) -> float | None:
    """An Elasticsearch time value in seconds (None: no timeout)."""
    if value is None:
        return None
    m = _TIME_VALUE.match(value)
    if not m or value == "-1":
        return None
    return 0.0 if value == "0" else int(m.group(1)) * _TIME_UNITS_S[m.group(2)]


def sort_spec(sort: SortItem | list[SortItem] | None) -> list[SortItem] | None:
    """The sort to apply to the fused list, or None for the fused order (``_score`` descending)."""
    if sort is None:
        return None
    items = sort if isinstance(sort, list) else [sort]

    def by_score(item: SortItem) -> str | None:
        if item == "_score":
            return "desc"
        if isinstance(item, dict) and list(item) == ["_score"]:
            spec = item["_score"]
            return str(spec.get("order", "desc") if isinstance(spec, dict) else spec)
        return None

    orders = [by_score(i) for i in items]
    if all(o is None for o in orders):
        return items
    if orders == ["desc"]:
        return None
    raise bad_request("[sort] by [_score] is only supported alone and descending: the fused score orders "
                      "the hits of a retriever search", "illegal_argument_exception")


async def execute(body: dict[str, Any], ctx: SearchContext, defaults: dict[str, Any],
                  opts: SearchOptions | None = None) -> tuple[dict, dict]:
    """Run a search; returns the Elasticsearch response and a query-log record."""
    opts = opts or SearchOptions()
    started = time.perf_counter()
    req = parse_request(body)
    tree, ctx.filters = retriever_tree(req, defaults)
    sort = sort_spec(req.sort)
    ctx.params = {**ctx.params, **opts.engine_params}
    ctx.search_timeout = req.timeout
    window = max(req.from_ + req.size, int(defaults["rank_window_size"]))
    counted: list[dict] = []  # the hit count's answer, when it went with the leaves
    try:  # the count rides in the leaves' _msearch: one round trip for both
        ranked, counted = await asyncio.wait_for(
            retrievers.run(tree, ctx, window, also=lambda: [b for b in [count_body(ctx, req)] if b is not None]),
            timeout_seconds(req.timeout))
    except TimeoutError:
        ranked, ctx.timed_out = [], True
    if req.min_score is not None:
        ranked = [(d, s) for d, s in ranked if s >= req.min_score]
    ranked = ranked[:MAX_WINDOW]
    selected, sort_values = await _select(ctx, ranked, req.post_filter, sort)
    groups: list[collapse_mod.Group] = []
    if req.collapse is not None:
        groups = (await collapse_mod.group(ctx, req.collapse, selected))[req.from_:req.from_ + req.size]
        page = [(g.representative, g.score) for g in groups]
    else:
        page = selected[req.from_:req.from_ + req.size]
    aggs = req.aggs if req.aggs is not None else req.aggregations
    hits, total, aggregations, inner = await asyncio.gather(
        _fetch_page(ctx, req, page), total_hits(ctx, req, selected, counted[0] if counted else None),
        _aggregations(ctx, aggs, req, ranked, opts.typed_keys) if aggs else _none(),
        collapse_mod.inner_hits(ctx, req.collapse, groups, req.post_filter, _source_param(req))
        if req.collapse is not None else _none())
    by_representative = {g.representative: g for g in groups}
    for hit in hits:
        if (g := by_representative.get(hit["_id"])) is not None:
            hit["fields"] = {**hit.get("fields", {}), req.collapse.field: [g.value]}
            if inner and g.representative in inner:
                hit["inner_hits"] = inner[g.representative]
    scored = sort is None or req.track_scores
    for hit in hits:
        if sort is not None:
            hit["sort"] = sort_values[hit["_id"]]
            if not req.track_scores:
                hit["_score"] = None
        if req.explain:
            hit["_explanation"] = explain(hit["_id"], hit["_score"] or 0.0, ctx)
    if _no_stored_fields(req):
        hits = [{k: v for k, v in h.items() if k not in ("_id", "_source")} for h in hits]
    max_score = max((s for _, s in selected), default=None) if scored else None
    hits_out: dict[str, Any] = {}
    if total is not None:
        hits_out["total"] = total["value"] if opts.total_as_int else total
    elif opts.total_as_int:
        hits_out["total"] = -1
    hits_out |= {"max_score": max_score, "hits": hits}
    response: dict[str, Any] = {
        "took": 0, "timed_out": ctx.timed_out,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}, "hits": hits_out}
    if aggs:
        response["aggregations"] = aggregations
    response["took"] = int((time.perf_counter() - started) * 1000)
    n = total["value"] if total else len(selected)
    log = {"query": ctx.query_texts[0] if ctx.query_texts else None, "retriever": next(iter(tree)),
           "retriever_tree": tree, "took_ms": (time.perf_counter() - started) * 1000, "stages": ctx.stages,
           "hits": n, "zero_result": n == 0, "zero_result_rate": float(n == 0),
           "top_ids": [d for d, _ in selected[:10]], "reranked": ctx.rerank_lift is not None,
           "rerank_lift": ctx.rerank_lift}
    return response, log


async def _none() -> None:
    return None


async def _select(ctx: SearchContext, ranked: list[tuple[str, float]], post_filter: Query | None,
                  sort: list[SortItem] | None) -> tuple[list[tuple[str, float]], dict[str, list]]:
    """The fused list after ``post_filter``, in fused order or by ``sort``; and each id's sort values."""
    if not ranked or (post_filter is None and sort is None):
        return ranked, {}
    clauses: list[Query] = [{"ids": {"values": [d for d, _ in ranked]}}]
    if post_filter is not None:
        clauses.append(post_filter)
    body: dict[str, Any] = {"query": {"bool": {"filter": clauses}}, "size": len(ranked), "_source": False,
                            "track_total_hits": False}
    if sort is not None:
        body["sort"] = sort
    resp = await ctx.search(body)
    scores = dict(ranked)
    if sort is None:
        keep = {h["_id"] for h in resp["hits"]["hits"]}
        return [(d, s) for d, s in ranked if d in keep], {}
    return ([(h["_id"], scores[h["_id"]]) for h in resp["hits"]["hits"]],
            {h["_id"]: h.get("sort", []) for h in resp["hits"]["hits"]})


async def total_hits(ctx: SearchContext, req: SearchRequest, selected: list[tuple[str, float]],
                     counted: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``hits.total`` of a retriever or hybrid search, with ``track_total_hits`` semantics.

    The rule: the total counts the documents that match the *lexical/filter part* of the
    tree (the ``standard`` and ``sparse`` leaves, each with its filters and the request's
    filters, combined as a disjunction), after ``post_filter`` -- the count a plain
    ``_search`` with those queries would report.  kNN candidates are not counted: a
    vector search matches every document, and Elasticsearch counts only what the
    query part matches.  Two cases have no such count and use the fused list instead:
    a tree without a lexical leaf (kNN only: the kNN hits found, as the engine
    reports for a kNN search) and a request or retriever with ``min_score`` (the fused
    hits kept: scores exist only for the fused list).

    ``track_total_hits``: absent counts up to 10,000 (then ``relation: gte``), ``true``
    counts exactly, an integer counts up to it, ``false`` (or -1) leaves ``hits.total`` out.

    ``counted``: the answer to :func:`count_body`, when it was searched already (with the leaves).
    """
    track = req.track_total_hits
    if track is False:
        return None
    body = count_body(ctx, req)
    if body is None:
        limit = 10_000 if track is None else (None if track is True else int(track))
        if limit is not None and len(selected) > limit:
            return {"value": limit, "relation": "gte"}
        return {"value": len(selected), "relation": "eq"}
    total = (counted or await ctx.search(body))["hits"]["total"]
    return total if isinstance(total, dict) else {"value": int(total), "relation": "eq"}


def count_body(ctx: SearchContext, req: SearchRequest) -> dict[str, Any] | None:
    """The engine search that counts :func:`total_hits` (once the tree's leaves are prepared), or None
    when the total is not counted by the engine (not tracked, or counted on the fused list)."""
    if req.track_total_hits is False or req.min_score is not None or ctx.score_cut or not ctx.lexical:
        return None
    query: Query = {"bool": {"should": ctx.lexical, "minimum_should_match": 1}}
    if req.post_filter is not None:
        query["bool"]["filter"] = [req.post_filter]
    body: dict[str, Any] = {"size": 0, "query": query}
    if req.track_total_hits is not None:
        body["track_total_hits"] = req.track_total_hits
    return body


def _source_param(req: SearchRequest) -> Any:
    """The request's ``_source`` as the client gave it (None: not given)."""
    return req.source.model_dump(exclude_none=True) if isinstance(req.source, SourceFilter) else req.source


async def _fetch_page(ctx: SearchContext, req: SearchRequest, page: list[tuple[str, float]]) -> list[dict]:
    """Sources (and highlights) of the page's ids, in fused order with fused scores."""
    if not page:
        return []
    ids = [d for d, _ in page]
    fetch: dict[str, Any] = {"query": {"ids": {"values": ids}}, "size": len(ids),
                             "_source": source_mod.fetch_value(_source_param(req))}
    for key in ("fields", "stored_fields", "docvalue_fields", "version", "seq_no_primary_term"):
        value = getattr(req, key)
        if value is not None and not (key == "stored_fields" and _no_stored_fields(req)):
            fetch[key] = value
    if req.highlight is not None:
        highlight = copy.deepcopy(req.highlight)
        if ctx.text_queries and "highlight_query" not in highlight:
            highlight["highlight_query"] = {"bool": {"should": ctx.text_queries}}
        elif ctx.query_texts and "highlight_query" not in highlight:
            highlight["highlight_query"] = {"multi_match": {"query": ctx.query_texts[0], "fields": ["*"]}}
        fetch["highlight"] = highlight
    rule = source_mod.fields_rule({"fields": req.fields, "docvalue_fields": req.docvalue_fields,
                                   "_source": req.source})
    t0 = time.perf_counter()
    resp = await ctx.search(source_mod.with_keys(fetch, rule))
    ctx.stages.append({"stage": "fetch", "took_ms": round((time.perf_counter() - t0) * 1000, 2), "hits": len(ids)})
    by_id = {h["_id"]: h for h in source_mod.hide(resp, rule)["hits"]["hits"]}
    hits = []
    for doc_id, score in page:
        hit = by_id.get(doc_id)
        if hit is None:  # deleted between retrieval and fetch
            continue
        hit["_score"] = score
        hits.append(hit)
    return hits


def _no_stored_fields(req: SearchRequest) -> bool:
    """``stored_fields: _none_``: hits without ``_id`` (ids are still fetched, then dropped)."""
    if req.stored_fields not in ("_none_", ["_none_"]):
        return False
    if req.source not in (None, False):
        raise bad_request("[stored_fields] cannot be disabled if [_source] is requested", "illegal_argument_exception")
    return True


async def _aggregations(ctx: SearchContext, aggs: dict, req: SearchRequest, ranked: list[tuple[str, float]],
                        typed_keys: bool) -> dict:
    """Aggregations over the documents the search matched, before ``post_filter`` (as Elasticsearch).

    The matched set is the fused list plus, without ``min_score``, every document the
    lexical leaves match (the set :func:`total_hits` counts, with the kNN hits added).
    """
    fused: Query = {"bool": {"filter": [{"ids": {"values": [d for d, _ in ranked]}}, *ctx.filters]}}
    query = fused if req.min_score is not None or ctx.score_cut or not ctx.lexical else {
        "bool": {"should": [*ctx.lexical, fused], "minimum_should_match": 1}}
    body = {"size": 0, "query": query, "aggs": source_mod.engine_aggs(aggs), "track_total_hits": False}
    resp = await ctx.search(body, **({"typed_keys": "true"} if typed_keys else {}))
    return source_mod.hide(resp.get("aggregations", {}))


def explain(doc_id: str, score: float, ctx: SearchContext) -> dict:
    """A per-stage breakdown of a hit's score, in the shape of Elasticsearch's ``_explanation``."""
    details = []
    for stage, ranks in ctx.components.items():
        if doc_id in ranks:
            rank, s = ranks[doc_id]
            details.append({"value": s, "description": f"{stage}: rank {rank}", "details": []})
        else:
            details.append({"value": 0.0, "description": f"{stage}: not in results", "details": []})
    return {"value": score, "description": "polyseek fused score", "details": details}


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SearchError(400, "parsing_exception", "request body must be a JSON object")
    return body


# --- URL parameters -----------------------------------------------------------------------------

def _bool_param(name: str, value: str) -> bool:
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise bad_request(f"Failed to parse value [{value}] of parameter [{name}] as only [true] or [false] "
                      "are allowed.", "illegal_argument_exception")


def _int_param(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"Failed to parse int parameter [{name}] with value [{value}]",
                          "illegal_argument_exception") from None


def _list_param(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def _sort_param(value: str) -> list[SortItem]:
    out: list[SortItem] = []
    for item in _list_param(value):
        name, _, order = item.rpartition(":") if ":" in item else (item, "", "")
        out.append({name: order} if order else name)
    return out


def apply_url_params(body: dict[str, Any], params: QueryParams, path: str) -> tuple[dict, SearchOptions]:
    """The body with the URL parameters applied (they win, as in Elasticsearch) and the answer's shape.

    An unknown or unsupported parameter is a 400 naming it.
    """
    body = dict(body)
    opts = SearchOptions()
    for name, value in params.multi_items():
        if name in ("size", "from"):
            body[name] = _int_param(name, value)
        elif name in source_mod.URL_PARAMS:
            continue  # below, all together
        elif name == "track_total_hits":
            body[name] = _bool_param(name, value) if value in ("true", "false", "") else _int_param(name, value)
        elif name in ("explain", "version", "seq_no_primary_term", "track_scores"):
            body[name] = _bool_param(name, value)
        elif name == "timeout":
            body[name] = value
        elif name in ("stored_fields", "docvalue_fields"):
            body[name] = _list_param(value)
        elif name == "sort":
            body[name] = _sort_param(value)
        elif name == "rest_total_hits_as_int":
            opts.total_as_int = _bool_param(name, value)
        elif name == "typed_keys":
            opts.typed_keys = _bool_param(name, value)
        elif name == "pretty":
            opts.pretty = _bool_param(name, value)
        elif name == "filter_path":
            opts.filter_path = value
        elif name in FORWARDED_PARAMS:
            opts.engine_params[name] = value
        elif name not in FORMAT_PARAMS:
            raise bad_request(f"request [{path}] contains unsupported parameter: [{name}] (not supported for "
                              "searches with retrievers or hybrid queries)", "illegal_argument_exception")
    url_source = source_mod.from_params(params.multi_items())
    if url_source is not None:
        body["_source"] = source_mod.body_value(url_source)
    return (total_as_int_body(body) if opts.total_as_int else body), opts


def total_as_int_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body under ``rest_total_hits_as_int``: totals tracked exactly unless disabled (as Elasticsearch)."""
    track = body.get("track_total_hits")
    if track is None:
        return {**body, "track_total_hits": True}
    if track is not True and track is not False and track != -1:
        raise bad_request(f"[rest_total_hits_as_int] cannot be used if the tracking of total hits is not "
                          f"accurate, got {track}", "illegal_argument_exception")
    return body


# --- filter_path --------------------------------------------------------------------------------

_MISSING = object()


def _next_paths(key: str, paths: list[list[str]]) -> list[list[str]]:
    """The remaining paths after descending into ``key`` (``*`` one key, ``**`` any depth)."""
    out = []
    for p in paths:
        if p[0] == "**":
            out.append(p)
            rest = p[1:]
            if not rest:
                out.append([])
            elif fnmatch.fnmatchcase(key, rest[0]):
                out.append(rest[1:])
        elif fnmatch.fnmatchcase(key, p[0]):
            out.append(p[1:])
    return out


def _keep(node: Any, paths: list[list[str]]) -> Any:
    if any(not p for p in paths):
        return node
    if isinstance(node, list):
        kept = [k for k in (_keep(n, paths) for n in node) if k is not _MISSING]
        return kept or _MISSING
    if not isinstance(node, dict):
        return _MISSING
    out = {}
    for key, value in node.items():
        nxt = _next_paths(key, paths)
        if nxt and (sub := _keep(value, nxt)) is not _MISSING:
            out[key] = sub
    return out or _MISSING


def _drop(node: Any, paths: list[list[str]]) -> Any:
    if isinstance(node, list):
        return [_drop(n, paths) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        nxt = _next_paths(key, paths)
        if any(not p for p in nxt):
            continue
        out[key] = _drop(value, nxt) if nxt else value
    return out


def filter_path(data: Any, expr: str) -> Any:
    """``data`` reduced by Elasticsearch's ``filter_path`` (``a.b``, ``*``, ``**``, ``-excluded``)."""
    parts = _list_param(expr)
    includes = [p.split(".") for p in parts if not p.startswith("-")]
    excludes = [p[1:].split(".") for p in parts if p.startswith("-")]
    if includes:
        data = _keep(data, includes)
        if data is _MISSING:
            return {}
    return _drop(data, excludes) if excludes else data
