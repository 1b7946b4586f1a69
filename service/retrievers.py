"""Elasticsearch retrievers, executed by the service over the engine.

Supported: ``standard`` (any query DSL, with ``sparse_vector`` queries rewritten to
``rank_feature`` clauses), ``knn`` (``query_vector`` or ``query_vector_builder``),
``sparse`` (shorthand for a standard retriever with one ``sparse_vector`` query),
``rrf``, ``linear`` and ``text_similarity_reranker``.  Leaves return ranked
``(id, score)`` lists; the caller fetches sources for the final page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.engine.dialect import Dialect, sparse_query
from pipelines.ingest.documents import CHUNKS_FIELD, SPARSE_FIELD, VECTOR_FIELD
from service import fusion
from service.engine_proxy import AsyncEngine
from service.errors import SearchError, bad_request

Ranked = fusion.Ranked
LEAVES = ("standard", "knn", "sparse")
COMPOUNDS = ("rrf", "linear", "text_similarity_reranker")


@dataclass
class SearchContext:
    """What a retriever tree needs to run, and what it records on the way."""

    engine: AsyncEngine
    dialect: Dialect
    index: str
    encode_query: Callable[[str, str | None], tuple[np.ndarray, dict[str, float] | None]]
    rerank: Callable[[str, list[str], str | None], np.ndarray]
    filters: list[dict] = field(default_factory=list)
    timeout_s: float = 10.0
    stages: list[dict[str, Any]] = field(default_factory=list)
    components: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)
    query_texts: list[str] = field(default_factory=list)
    text_queries: list[dict] = field(default_factory=list)
    rerank_lift: float | None = None  # 1.0 when the reranker changed the top hit

    def record(self, name: str, started: float, ranked: Ranked) -> None:
        self.stages.append({"stage": name, "took_ms": round((time.perf_counter() - started) * 1000, 2),
                            "hits": len(ranked)})
        key = name if name not in self.components else f"{name}#{len(self.stages)}"
        self.components[key] = {d: (r, s) for r, (d, s) in enumerate(ranked, 1)}


def _one_key(spec: Any, what: str) -> tuple[str, dict]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise bad_request(f"[{what}] must be an object with exactly one retriever")
    (kind, body), = spec.items()
    if not isinstance(body, dict):
        raise bad_request(f"[{kind}] retriever must be an object")
    return kind, body


def validate(spec: Any, path: str = "retriever") -> None:
    """Check the whole tree before any work is done (unknown retriever -> 400)."""
    kind, body = _one_key(spec, path)
    if kind not in LEAVES + COMPOUNDS:
        raise SearchError(400, "x_content_parse_exception",
                          f"[1:1] unknown retriever [{kind}]; supported: {', '.join(LEAVES + COMPOUNDS)}")
    if kind == "knn":
        if "field" not in body:
            raise bad_request("[knn] requires [field]", "illegal_argument_exception")
        if ("query_vector" in body) == ("query_vector_builder" in body):
            raise bad_request("[knn] requires exactly one of [query_vector, query_vector_builder]",
                              "illegal_argument_exception")
    if kind in ("rrf", "linear"):
        subs = body.get("retrievers")
        if not isinstance(subs, list) or not subs:
            raise bad_request(f"[{kind}] requires a non-empty [retrievers] list", "illegal_argument_exception")
        for i, sub in enumerate(subs):
            validate(_unwrap(sub)[0], f"{path}.{kind}.retrievers[{i}]")
        if kind == "linear":
            for sub in subs:
                norm = _unwrap(sub)[2] or body.get("normalizer", "none")
                if norm not in fusion.NORMALIZERS:
                    raise bad_request(f"[linear] unknown normalizer [{norm}]", "illegal_argument_exception")
    if kind == "text_similarity_reranker":
        if "retriever" not in body or "field" not in body or "inference_text" not in body:
            raise bad_request("[text_similarity_reranker] requires [retriever], [field] and [inference_text]",
                              "illegal_argument_exception")
        validate(body["retriever"], f"{path}.text_similarity_reranker.retriever")


def _unwrap(sub: dict) -> tuple[dict, float, str | None]:
    """rrf/linear entries are a retriever, or ``{"retriever": ..., "weight": w, "normalizer": n}``."""
    if isinstance(sub, dict) and "retriever" in sub:
        return sub["retriever"], float(sub.get("weight", 1.0)), sub.get("normalizer")
    return sub, 1.0, None


async def rewrite_sparse(query: Any, ctx: SearchContext) -> Any:
    """Replace ``sparse_vector`` queries by rank_feature clauses over the query's term weights."""
    if isinstance(query, list):
        return [await rewrite_sparse(q, ctx) for q in query]
    if not isinstance(query, dict):
        return query
    if "sparse_vector" in query and isinstance(query["sparse_vector"], dict):
        sv = query["sparse_vector"]
        field_name = sv.get("field", "sparse")
        weights = sv.get("query_vector")
        if weights is None:
            text = sv.get("query")
            if not isinstance(text, str):
                raise bad_request("[sparse_vector] requires [query] text or [query_vector] weights")
            ctx.query_texts.append(text)
            _, weights = await asyncio.to_thread(ctx.encode_query, text, sv.get("inference_id"))
            if weights is None:
                raise SearchError(400, "illegal_argument_exception",
                                  "the dense model has no sparse head; give [query_vector] weights")
        if not weights:
            return {"match_none": {}}
        return sparse_query(field_name, weights, float(sv.get("boost", 1.0)))
    return {k: await rewrite_sparse(v, ctx) for k, v in query.items()}


def _collect_text(query: Any, ctx: SearchContext) -> None:
    """Remember text of match-like queries (query log, highlight, reranker default)."""
    if isinstance(query, dict):
        for key, value in query.items():
            if key in ("match", "match_phrase", "multi_match", "query_string", "simple_query_string"):
                ctx.text_queries.append({key: value})
                inner = value.get("query") if isinstance(value, dict) else None
                if inner is None and isinstance(value, dict) and len(value) == 1:
                    (fv,) = value.values()
                    inner = fv.get("query") if isinstance(fv, dict) else fv
                if isinstance(inner, str):
                    ctx.query_texts.append(inner)
            else:
                _collect_text(value, ctx)
    elif isinstance(query, list):
        for q in query:
            _collect_text(q, ctx)


def _filtered(query: dict, ctx: SearchContext, extra: Any = None) -> dict:
    filters = list(ctx.filters)
    if extra:
        filters += extra if isinstance(extra, list) else [extra]
    return {"bool": {"must": [query], "filter": filters}} if filters else query


def _hits_to_ranked(resp: dict) -> Ranked:
    return [(h["_id"], float(h["_score"] or 0.0)) for h in resp["hits"]["hits"]]


async def _search_ids(ctx: SearchContext, query: dict, size: int, min_score: float | None = None) -> Ranked:
    body: dict[str, Any] = {"query": query, "size": size, "_source": False, "track_total_hits": False}
    if min_score is not None:
        body["min_score"] = min_score
    resp = await ctx.engine.json("POST", f"/{ctx.index}/_search", body, timeout_s=ctx.timeout_s)
    return _hits_to_ranked(resp)


async def run(spec: dict, ctx: SearchContext, window: int, name: str | None = None) -> Ranked:
    """Execute one retriever (sub)tree, returning up to ``window`` ranked ids."""
    kind, body = _one_key(spec, "retriever")
    started = time.perf_counter()
    if kind == "standard":
        query = body.get("query", {"match_all": {}})
        _collect_text(query, ctx)
        ranked = await _search_ids(ctx, _filtered(await rewrite_sparse(query, ctx), ctx, body.get("filter")),
                                   window, body.get("min_score"))
        ctx.record(name or ("sparse" if "sparse_vector" in str(query) else "bm25"), started, ranked)
        return ranked
    if kind == "sparse":
        sv = {"field": body.get("field", "sparse"), **{k: v for k, v in body.items() if k != "field"}}
        query = await rewrite_sparse({"sparse_vector": sv}, ctx)
        ranked = await _search_ids(ctx, _filtered(query, ctx, body.get("filter")), window)
        ctx.record(name or "sparse", started, ranked)
        return ranked
    if kind == "knn":
        if "query_vector" in body:
            vector = body["query_vector"]
            if not isinstance(vector, list) or not all(isinstance(v, (int, float)) for v in vector):
                raise bad_request("[knn] [query_vector] must be an array of numbers")
        else:
            builder = body["query_vector_builder"].get("text_embedding", {})
            text = builder.get("model_text")
            if not isinstance(text, str):
                raise bad_request("[query_vector_builder] requires [text_embedding.model_text]")
            ctx.query_texts.append(text)
            dense, _ = await asyncio.to_thread(ctx.encode_query, text, builder.get("model_id"))
            vector = dense.tolist()
        k = int(body.get("k", window))
        filters = list(ctx.filters) + ([body["filter"]] if isinstance(body.get("filter"), dict)
                                       else list(body.get("filter") or []))
        num_candidates = int(body.get("num_candidates", max(k, 100)))
        flt = {"bool": {"filter": filters}} if filters else None
        if body["field"] == VECTOR_FIELD:  # long products: the best of their chunk vectors counts
            clause = ctx.dialect.best_chunk_knn_query(VECTOR_FIELD, CHUNKS_FIELD, vector, k, num_candidates, flt)
        else:
            clause = ctx.dialect.knn_query(body["field"], vector, k, num_candidates, flt)
        ranked = (await _search_ids(ctx, clause, k, body.get("similarity")))[:k]
        ctx.record(name or "knn", started, ranked)
        return ranked
    if kind in ("rrf", "linear"):
        sub_window = int(body.get("rank_window_size", window))
        subs = [_unwrap(s) for s in body["retrievers"]]
        lists = await asyncio.gather(*(run(s, ctx, sub_window) for s, _, _ in subs))
        if kind == "rrf":
            fused = fusion.rrf(lists, int(body.get("rank_constant", 60)), sub_window, [w for _, w, _ in subs])
        else:
            default_norm = body.get("normalizer", "none")
            fused = fusion.linear(lists, [w for _, w, _ in subs], [n or default_norm for _, _, n in subs],
                                  sub_window)
        ranked = fused[:max(window, sub_window)]
        ctx.record(name or kind, started, ranked)
        return ranked
    if kind == "text_similarity_reranker":
        rerank_window = int(body.get("rank_window_size", 10))
        candidates = await run(body["retriever"], ctx, max(rerank_window, window))
        head, tail = candidates[:rerank_window], candidates[rerank_window:]
        if not head:
            return []
        texts = await fetch_texts(ctx, [d for d, _ in head], body["field"])
        scores = await asyncio.to_thread(ctx.rerank, body["inference_text"], [texts.get(d, "") for d, _ in head],
                                         body.get("inference_id"))
        reranked = sorted(zip([d for d, _ in head], scores.tolist()), key=lambda kv: -kv[1])
        ctx.rerank_lift = float(reranked[0][0] != head[0][0])
        min_score = body.get("min_score")
        if min_score is not None:
            reranked = [(d, s) for d, s in reranked if s >= float(min_score)]
        # documents beyond the window keep their order, below every reranked one
        floor = min((s for _, s in reranked), default=0.0)
        ranked = reranked + [(d, floor - 1.0 - i) for i, (d, _) in enumerate(tail)] if min_score is None else reranked
        ctx.record(name or "rerank", started, ranked)
        return ranked
    raise SearchError(400, "x_content_parse_exception", f"unknown retriever [{kind}]")


async def fetch_texts(ctx: SearchContext, ids: list[str], field_name: str) -> dict[str, str]:
    """``field_name`` plus category and description (for context) of each id, for the reranker."""
    fields = list(dict.fromkeys([field_name, "category", "description"]))
    resp = await ctx.engine.json("POST", f"/{ctx.index}/_search",
                                 {"query": {"ids": {"values": ids}}, "size": len(ids), "_source": fields},
                                 timeout_s=ctx.timeout_s)
    out = {}
    for hit in resp["hits"]["hits"]:
        src = hit.get("_source", {})
        out[hit["_id"]] = " . ".join(str(src[f]) for f in fields if src.get(f))
    return out


def expand_hybrid(spec: dict, defaults: dict[str, Any]) -> dict:
    """The ``{"query": {"hybrid": {...}}}`` shorthand as an explicit retriever tree.

    ``{"query": text, "fields": [...], "sparse": bool, "rerank": bool, "rank_window_size": n,
    "fusion": "rrf" | "linear", "weights": {"bm25": w, "knn": w, "sparse": w}, "normalizer": name}``
    -> BM25 + kNN (+ sparse) -> RRF/linear (-> reranker); unspecified keys come from settings
    (fitted on training queries: ``python -m bench.tune_fusion``).  A leaf weighted 0 is not run.
    """
    text = spec.get("query")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("[hybrid] requires a non-empty [query] string")
    window = int(spec.get("rank_window_size", defaults["rank_window_size"]))
    weights = {**defaults.get("weights", {}), **(spec.get("weights") or {})}
    leaves: dict[str, dict] = {
        "bm25": {"standard": {"query": {"multi_match": {"query": text, "type": "best_fields",
                                                        "fields": spec.get("fields", defaults["fields"])}}}},
        "knn": {"knn": {"field": VECTOR_FIELD, "k": window, "num_candidates": max(window, 100),
                        "query_vector_builder": {"text_embedding": {"model_text": text}}}},
    }
    if spec.get("sparse", defaults["sparse"]):
        leaves["sparse"] = {"sparse": {"field": SPARSE_FIELD, "query": text}}
    subs = [(leaf, float(weights.get(name, 1.0))) for name, leaf in leaves.items()
            if float(weights.get(name, 1.0)) > 0]
    if not subs:
        raise bad_request("[hybrid] every retriever has weight 0", "illegal_argument_exception")
    fusion_kind = spec.get("fusion", defaults.get("fusion", "rrf"))
    if fusion_kind == "linear":
        norm = spec.get("normalizer", defaults.get("normalizer", "zscore"))
        if norm not in fusion.NORMALIZERS:
            raise bad_request(f"[hybrid] unknown normalizer [{norm}]", "illegal_argument_exception")
        tree: dict = {"linear": {"retrievers": [{"retriever": s, "weight": w, "normalizer": norm} for s, w in subs],
                                 "rank_window_size": window}}
    elif fusion_kind == "rrf":
        tree = {"rrf": {"retrievers": [{"retriever": s, "weight": w} for s, w in subs], "rank_window_size": window,
                        "rank_constant": int(spec.get("rank_constant", defaults["rank_constant"]))}}
    else:
        raise bad_request(f"[hybrid] unknown fusion [{fusion_kind}]; use rrf or linear", "illegal_argument_exception")
    if spec.get("rerank", defaults["rerank"]):
        tree = {"text_similarity_reranker": {"retriever": tree, "field": defaults["rerank_field"],
                                             "inference_text": text,
                                             "rank_window_size": defaults["rerank_window"]}}
    return tree
