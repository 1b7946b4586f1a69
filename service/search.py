"""``_search`` with retrievers or the hybrid shorthand, answered in Elasticsearch's shape."""

from __future__ import annotations

import copy
import time
from typing import Any

from pipelines.ingest.documents import VECTOR_FIELDS
from service import retrievers
from service.errors import SearchError, bad_request
from service.retrievers import SearchContext

# request keys the service executes itself; anything else makes it a pass-through
_HANDLED_KEYS = {"retriever", "query", "from", "size", "_source", "highlight", "aggs", "aggregations",
                 "explain", "track_total_hits", "post_filter", "min_score", "timeout", "fields", "stored_fields"}


def needs_service(body: dict[str, Any]) -> bool:
    """True when the request uses a feature the engine cannot run itself."""
    if "retriever" in body:
        return True
    query = body.get("query")
    return isinstance(query, dict) and "hybrid" in query


def retriever_tree(body: dict[str, Any], defaults: dict[str, Any]) -> tuple[dict, list[dict]]:
    """The retriever tree of a request and the filters to apply to every leaf."""
    if "retriever" in body:
        if "query" in body:
            raise bad_request("cannot specify [retriever] and [query] together", "illegal_argument_exception")
        tree = body["retriever"]
        retrievers.validate(tree)
        filters = []
    else:
        hybrid = body["query"]["hybrid"]
        if not isinstance(hybrid, dict):
            raise bad_request("[hybrid] must be an object")
        tree = retrievers.expand_hybrid(hybrid, defaults)
        flt = hybrid.get("filter")
        filters = flt if isinstance(flt, list) else ([flt] if flt else [])
    if "post_filter" in body:
        filters.append(body["post_filter"])
    return tree, filters


def _page_args(body: dict[str, Any]) -> tuple[int, int]:
    try:
        start, size = int(body.get("from", 0)), int(body.get("size", 10))
    except (TypeError, ValueError):
        raise bad_request("[from] and [size] must be integers") from None
    if start < 0 or size < 0:
        raise bad_request("[from] and [size] must be >= 0", "illegal_argument_exception")
    if start + size > 10_000:
        raise bad_request("Result window is too large, from + size must be less than or equal to [10000]",
                          "illegal_argument_exception")
    return start, size


async def execute(body: dict[str, Any], ctx: SearchContext, defaults: dict[str, Any]) -> tuple[dict, dict]:
    """Run a search; returns the Elasticsearch response and a query-log record."""
    started = time.perf_counter()
    unknown = set(body) - _HANDLED_KEYS
    if unknown:
        raise bad_request(f"[{', '.join(sorted(unknown))}] is not supported together with retrievers",
                          "illegal_argument_exception")
    tree, ctx.filters = retriever_tree(body, defaults)
    start, size = _page_args(body)
    window = max(start + size, int(defaults["rank_window_size"]))
    ranked = await retrievers.run(tree, ctx, window)
    total = len(ranked)
    page = ranked[start:start + size]
    hits = await _fetch_page(ctx, body, page)
    if body.get("explain"):
        for hit in hits:
            hit["_explanation"] = explain(hit["_id"], hit["_score"], ctx)
    response: dict[str, Any] = {
        "took": 0, "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": total, "relation": "eq"},
                 "max_score": max((h["_score"] for h in hits), default=None), "hits": hits},
    }
    aggs = body.get("aggs", body.get("aggregations"))
    if aggs:
        response["aggregations"] = await _aggregations(ctx, aggs, [d for d, _ in ranked])
    response["took"] = int((time.perf_counter() - started) * 1000)
    log = {"query": ctx.query_texts[0] if ctx.query_texts else None, "retriever": next(iter(tree)),
           "retriever_tree": tree, "took_ms": (time.perf_counter() - started) * 1000, "stages": ctx.stages,
           "hits": total, "zero_result": total == 0, "zero_result_rate": float(total == 0),
           "top_ids": [d for d, _ in ranked[:10]], "reranked": ctx.rerank_lift is not None,
           "rerank_lift": ctx.rerank_lift}
    return response, log


async def _fetch_page(ctx: SearchContext, body: dict[str, Any], page: list[tuple[str, float]]) -> list[dict]:
    """Sources (and highlights) of the page's ids, in fused order with fused scores."""
    if not page:
        return []
    ids = [d for d, _ in page]
    fetch: dict[str, Any] = {"query": {"ids": {"values": ids}}, "size": len(ids)}
    if "_source" in body:
        fetch["_source"] = body["_source"]
    else:
        fetch["_source"] = {"excludes": list(VECTOR_FIELDS)}
    for key in ("fields", "stored_fields"):
        if key in body:
            fetch[key] = body[key]
    if "highlight" in body:
        highlight = copy.deepcopy(body["highlight"])
        if ctx.text_queries and "highlight_query" not in highlight:
            highlight["highlight_query"] = {"bool": {"should": ctx.text_queries}}
        elif ctx.query_texts and "highlight_query" not in highlight:
            highlight["highlight_query"] = {"multi_match": {"query": ctx.query_texts[0], "fields": ["*"]}}
        fetch["highlight"] = highlight
    t0 = time.perf_counter()
    resp = await ctx.engine.json("POST", f"/{ctx.index}/_search", fetch, timeout_s=ctx.timeout_s)
    ctx.stages.append({"stage": "fetch", "took_ms": round((time.perf_counter() - t0) * 1000, 2), "hits": len(ids)})
    by_id = {h["_id"]: h for h in resp["hits"]["hits"]}
    hits = []
    for doc_id, score in page:
        hit = by_id.get(doc_id)
        if hit is None:  # deleted between retrieval and fetch
            continue
        hit["_score"] = score
        hits.append(hit)
    return hits


async def _aggregations(ctx: SearchContext, aggs: dict, ids: list[str]) -> dict:
    """Aggregations over the documents the retrievers found, with the filters applied."""
    query: dict[str, Any] = {"bool": {"filter": [{"ids": {"values": ids}}, *ctx.filters]}}
    resp = await ctx.engine.json("POST", f"/{ctx.index}/_search",
                                 {"size": 0, "query": query, "aggs": aggs}, timeout_s=ctx.timeout_s)
    return resp.get("aggregations", {})


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
