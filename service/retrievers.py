"""Elasticsearch retrievers, executed by the service over the engine.

Supported: ``standard`` (any query DSL, with ``sparse_vector`` queries rewritten to
``rank_feature`` clauses), ``knn`` (``query_vector`` or ``query_vector_builder``),
``sparse`` (shorthand for a standard retriever with one ``sparse_vector`` query),
``rrf``, ``linear`` and ``text_similarity_reranker``.

A tree runs in two steps, as Elasticsearch's compound retrievers do: :func:`prepare` builds
every leaf's engine search (embedding the query texts concurrently), then every leaf of the
whole tree goes to the engine in **one** ``_msearch`` (:meth:`SearchContext.msearch`) and
:func:`evaluate` fuses (and reranks) the answers bottom-up.  Leaves answer ranked
``(id, score)`` lists; the caller fetches sources for the final page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.engine.dialect import Dialect
from pipelines.engine.errors import EngineError, EngineRequestError, from_response
from pipelines.engine.transport import AsyncEngine, encode_ndjson
from pipelines.schema import (CHUNKS_FIELD, LANG_FIELD, SPARSE_FIELD, UNDETERMINED, VECTOR_FIELD, detect_language,
                              rerank_fields, rerank_text)
from service import fusion
from service.fusion import Normalizer
from service.errors import SearchError, bad_request

Ranked = fusion.Ranked
LEAVES = ("standard", "knn", "sparse")
COMPOUNDS = ("rrf", "linear", "text_similarity_reranker")
# URL parameters of a search that an ``_msearch`` item takes in its header (the engine refuses
# other header keys); a search with another one (``batched_reduce_size``) runs as separate ``_search``es
MSEARCH_HEADER_PARAMS = frozenset({"search_type", "request_cache", "routing", "preference", "ignore_unavailable",
                                   "allow_no_indices", "expand_wildcards", "allow_partial_search_results",
                                   "ccs_minimize_roundtrips", "ignore_throttled"})
# URL parameters of a search that ``_msearch`` takes on its own URL, for all of its items
MSEARCH_URL_PARAMS = frozenset({"max_concurrent_shard_requests", "pre_filter_shard_size"})


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
    params: dict[str, str] = field(default_factory=dict)  # URL params of every engine search (routing...)
    search_timeout: str | None = None  # the request's ``timeout``, passed to every leaf search
    timed_out: bool = False  # a leaf search answered ``timed_out: true``
    lexical: list[dict] = field(default_factory=list)  # filtered queries of standard/sparse leaves
    score_cut: bool = False  # a retriever dropped documents by score (min_score): count the fused list
    answered_by: set[str] = field(default_factory=set)  # physical indices that answered hits (``_index``)
    doc_lang: dict[str, str] = field(default_factory=dict)  # leaf hits' languages, where a gate asked for them
    _query_language: str | None = field(default=None, init=False, repr=False)

    def query_language(self) -> str | None:
        """The language detected in the search's (first) query text, once per search; None when
        there is no text or the detector is unsure."""
        if self._query_language is None and self.query_texts:
            self._query_language = detect_language(self.query_texts[0])
        return None if self._query_language in (None, UNDETERMINED) else self._query_language

    async def search(self, body: dict[str, Any], **params: str) -> dict[str, Any]:
        """One ``_search`` on the context's index with the request's URL params (and ``params``);
        errors as :func:`engine_error`."""
        resp = await self.engine.request("POST", f"/{self.index}/_search", json_body=body,
                                         params={**self.params, **params} or None, timeout_s=self.timeout_s)
        return self._answer(resp.status, _parsed(resp))

    async def msearch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The answers to ``bodies``, searched on the context's index in one ``_msearch`` (one round
        trip; the engine runs the items concurrently).  The first failed item (in order) is raised as
        :func:`engine_error`, as its own ``_search`` would have been.  With a URL parameter ``_msearch``
        cannot carry, the bodies go as concurrent ``_search``es instead."""
        if len(bodies) < 2 or set(self.params) - MSEARCH_HEADER_PARAMS - MSEARCH_URL_PARAMS:
            return list(await asyncio.gather(*(self.search(b) for b in bodies)))
        head = {"index": self.index, **{k: _header_value(v) for k, v in self.params.items()
                                        if k in MSEARCH_HEADER_PARAMS}}
        ndjson = encode_ndjson((head, b) for b in bodies)
        url = {k: v for k, v in self.params.items() if k in MSEARCH_URL_PARAMS}
        resp = await self.engine.request("POST", "/_msearch", content=ndjson, params=url or None,
                                         timeout_s=self.timeout_s)
        data = _parsed(resp)
        items = data.get("responses") if resp.status < 400 and isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(bodies):
            raise engine_error(resp.status, data)
        return [self._answer(int(item.get("status", 200)), item) for item in items]

    def _answer(self, status: int, data: dict[str, Any]) -> dict[str, Any]:
        """A search answer checked: errors raised, ``timed_out`` and the answering indices noted."""
        if status >= 400 or "error" in data:
            raise engine_error(status, data)
        self.timed_out |= bool(data.get("timed_out"))
        self.answered_by.update(h["_index"] for h in (data.get("hits") or {}).get("hits") or () if "_index" in h)
        return data

    def record(self, name: str, started: float, ranked: Ranked) -> None:
        self.stages.append({"stage": name, "took_ms": round((time.perf_counter() - started) * 1000, 2),
                            "hits": len(ranked)})
        key = name if name not in self.components else f"{name}#{len(self.stages)}"
        self.components[key] = {d: (r, s) for r, (d, s) in enumerate(ranked, 1)}


# shard-level failures that are the request's fault: the engine may wrap them in a 500
# ``search_phase_execution_exception``; Elasticsearch answers them with a 400
CLIENT_ERROR_TYPES = frozenset({"illegal_argument_exception", "parsing_exception", "query_shard_exception",
                                "number_format_exception", "x_content_parse_exception", "search_exception",
                                "mapper_parsing_exception", "search_context_exception"})


def engine_error(status: int, data: Any) -> EngineError:
    """A search's error answer (:func:`~pipelines.engine.errors.from_response`), except that a 500
    caused by the request becomes a 400, as Elasticsearch answers it."""
    err = data.get("error") if isinstance(data, dict) else None
    causes = (err.get("root_cause") or [{}]) if isinstance(err, dict) else [{}]
    cause = causes[0] if isinstance(causes[0], dict) else {}
    if status >= 500 and cause.get("type") in CLIENT_ERROR_TYPES:
        return EngineRequestError(400, cause["type"], str(cause.get("reason", "")), body=data)
    return from_response(status, data)


def _parsed(resp: Any) -> Any:
    """An engine answer's JSON (its text as the error when it is not JSON)."""
    try:
        return resp.json() or {}
    except ValueError:
        return {"error": resp.text[:500]}


def _header_value(value: str) -> Any:
    """A URL parameter's value as an ``_msearch`` header holds it (booleans as JSON booleans)."""
    return {"true": True, "false": False}.get(value, value)


def _one_key(spec: Any, what: str) -> tuple[str, dict]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise bad_request(f"[{what}] must be an object with exactly one retriever")
    (kind, body), = spec.items()
    if not isinstance(body, dict):
        raise bad_request(f"[{kind}] retriever must be an object")
    return kind, body


# --- request models: every retriever body is validated before any work is done --------------
# Unknown keys are refused (never silently ignored); numbers given as strings are coerced as
# Elasticsearch's parser does ("10" -> 10), anything else of the wrong type is a 400.

Query = dict[str, Any]
Filter = Query | list[Query]
MAX_WINDOW = 10_000  # the engine's index.max_result_window


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TextEmbedding(_Strict):
    model_text: str
    model_id: str | None = None


class VectorBuilder(_Strict):
    text_embedding: TextEmbedding


class StandardRetriever(_Strict):
    query: Query = Field(default_factory=lambda: {"match_all": {}})
    filter: Filter | None = None
    min_score: float | None = None


class KnnRetriever(_Strict):
    field: str
    query_vector: list[float] | None = None
    query_vector_builder: VectorBuilder | None = None
    k: int | None = Field(None, ge=1, le=MAX_WINDOW)
    num_candidates: int | None = Field(None, ge=1, le=MAX_WINDOW)
    filter: Filter | None = None
    similarity: float | None = None

    @model_validator(mode="after")
    def _one_vector(self) -> KnnRetriever:
        if (self.query_vector is None) == (self.query_vector_builder is None):
            raise ValueError("[knn] requires exactly one of [query_vector, query_vector_builder]")
        if self.k is not None and self.num_candidates is not None and self.num_candidates < self.k:
            raise ValueError("[num_candidates] cannot be less than [k]")
        return self


class SparseVectorQuery(_Strict):
    """A ``sparse_vector`` query (in any query DSL of a retriever; rewritten by :func:`rewrite_sparse`)."""

    field: str = SPARSE_FIELD
    query: str | None = None
    query_vector: dict[str, float] | None = None
    inference_id: str | None = None
    boost: float = 1.0


class SparseRetriever(SparseVectorQuery):
    filter: Filter | None = None


class WeightedRetriever(_Strict):
    """An entry of ``rrf``/``linear``: a retriever, or ``{"retriever", "weight", "normalizer"}``.

    ``gated`` (Polyseek): the entry counts only when the fusion's ``agreement_gate`` reference
    ranks its top hit high (:func:`service.fusion.gate_open`).
    """

    retriever: RetrieverSpec
    weight: float = Field(1.0, ge=0)
    normalizer: Normalizer | None = None
    gated: bool = False


class AgreementGate(_Strict):
    """Polyseek's query-adaptive rule on ``rrf``/``linear``: gated entries need the reference entry's agreement.

    See :func:`service.fusion.gate_open`: a gated entry's top hit must be in the reference's top
    ``k``, or within ``margin`` (cosine, for a kNN reference) of the reference's best; any hit of
    the ``anchor`` entry opens the gate.  ``language_boost``: when the gate is open, documents in
    the language the lexical evidence shows (:func:`service.fusion.anchor_languages`) gain this
    much fused score (:func:`service.fusion.prefer_languages`).
    """

    reference: int = Field(ge=0)
    k: int = Field(10, ge=0, le=MAX_WINDOW)  # 0 and no margin/anchor: no gating (``within`` alone)
    margin: float | None = Field(None, ge=0)
    anchor: int | None = Field(None, ge=0)
    language_boost: float = Field(0.0, ge=0)
    within: bool = False  # rank only the reference entry's documents: the others reorder, never add


def _wrap_entries(entries: Any) -> Any:
    if isinstance(entries, list):
        return [e if isinstance(e, dict) and "retriever" in e else {"retriever": e} for e in entries]
    return entries


class RRFRetriever(_Strict):
    retrievers: Annotated[list[WeightedRetriever], BeforeValidator(_wrap_entries), Field(min_length=1)]
    rank_window_size: int | None = Field(None, ge=1, le=MAX_WINDOW)
    rank_constant: int = Field(60, ge=1)
    agreement_gate: AgreementGate | None = None

    @model_validator(mode="after")
    def _gate_reference(self):
        _check_gate(self.agreement_gate, len(self.retrievers))
        return self


class LinearRetriever(_Strict):
    retrievers: Annotated[list[WeightedRetriever], BeforeValidator(_wrap_entries), Field(min_length=1)]
    rank_window_size: int | None = Field(None, ge=1, le=MAX_WINDOW)
    normalizer: Normalizer = "none"
    agreement_gate: AgreementGate | None = None

    @model_validator(mode="after")
    def _gate_reference(self):
        _check_gate(self.agreement_gate, len(self.retrievers))
        return self


def _check_gate(gate: AgreementGate | None, entries: int) -> None:
    if gate is not None and gate.reference >= entries:
        raise ValueError(f"agreement_gate.reference [{gate.reference}] names no entry of [retrievers]")
    if gate is not None and gate.anchor is not None and gate.anchor >= entries:
        raise ValueError(f"agreement_gate.anchor [{gate.anchor}] names no entry of [retrievers]")


class RerankerRetriever(_Strict):
    retriever: RetrieverSpec
    field: str
    inference_text: str
    inference_id: str | None = None
    rank_window_size: int = Field(10, ge=1, le=MAX_WINDOW)
    min_score: float | None = None


class RetrieverSpec(_Strict):
    """Exactly one retriever, keyed by its kind."""

    standard: StandardRetriever | None = None
    knn: KnnRetriever | None = None
    sparse: SparseRetriever | None = None
    rrf: RRFRetriever | None = None
    linear: LinearRetriever | None = None
    text_similarity_reranker: RerankerRetriever | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError("must be an object with exactly one retriever")
        ((kind, body),) = data.items()
        if kind not in LEAVES + COMPOUNDS:
            raise ValueError(f"unknown retriever [{kind}]; supported: {', '.join(LEAVES + COMPOUNDS)}")
        if not isinstance(body, dict):
            raise ValueError(f"[{kind}] retriever must be an object")
        return data


class HybridQuery(_Strict):
    """The ``{"query": {"hybrid": {...}}}`` shorthand (see :func:`expand_hybrid`)."""

    query: str
    fields: list[str] | None = None
    sparse: bool | None = None
    rerank: bool | None = None
    rank_window_size: int | None = Field(None, ge=1, le=MAX_WINDOW)
    rank_constant: int | None = Field(None, ge=1)
    fusion: Literal["rrf", "linear"] | None = None
    weights: dict[Literal["bm25", "knn", "sparse", "exact", "language"], Annotated[float, Field(ge=0)]] | None = None
    normalizer: Normalizer | None = None
    gate_k: int | None = Field(None, ge=0, le=MAX_WINDOW)
    gate_margin: Annotated[float, Field(ge=0)] | Literal[False] | None = None
    within_knn: bool | None = None
    filter: Filter | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("[hybrid] requires a non-empty [query] string")
        return text


def parse_error(exc: ValidationError, root: str) -> SearchError:
    """A pydantic error as Elasticsearch's ``x_content_parse_exception`` naming the key path.

    A value that fits none of a field's allowed types gives one error per type; they
    share the field's path, which is what the client needs to see.
    """
    errors = exc.errors()
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    if len(errors) > 1:
        common = loc
        for other in errors[1:]:
            other_loc = [str(p) for p in other["loc"]]
            n = next((i for i, (a, b) in enumerate(zip(common, other_loc)) if a != b), min(len(common), len(other_loc)))
            common = common[:n]
        if common != loc:
            path = ".".join([root, *common])
            return SearchError(400, "x_content_parse_exception",
                               f"[{path}] failed to parse: value of an unexpected type or shape")
    path = ".".join([root, *loc])
    if err["type"] == "extra_forbidden":
        reason = f"[{path}] unknown field [{loc[-1] if loc else root}]"
    elif err["type"] == "missing":
        reason = f"[{path}] failed to parse: required field [{loc[-1] if loc else root}] is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        reason = f"[{path}] failed to parse: {msg}" + ("" if err["type"] == "value_error"
                                                        else f" (got {err.get('input')!r:.80})")
    return SearchError(400, "x_content_parse_exception", reason)


def parse(spec: Any, path: str = "retriever") -> dict:
    """The retriever tree validated, as a plain dict with every default filled in."""
    try:
        model = RetrieverSpec.model_validate(spec)
    except ValidationError as exc:
        raise parse_error(exc, path) from None
    return model.model_dump(exclude_none=True)


for _model in (WeightedRetriever, RRFRetriever, LinearRetriever, RerankerRetriever, RetrieverSpec):
    _model.model_rebuild()


def _unwrap(sub: dict) -> tuple[dict, float, str | None]:
    """rrf/linear entries are a retriever, or ``{"retriever": ..., "weight": w, "normalizer": n}``."""
    if "retriever" in sub:
        return sub["retriever"], float(sub.get("weight", 1.0)), sub.get("normalizer")
    return sub, 1.0, None


async def rewrite_sparse(query: Any, ctx: SearchContext) -> Any:
    """Replace ``sparse_vector`` queries by the dialect's clauses over the query's term weights."""
    if isinstance(query, list):
        return [await rewrite_sparse(q, ctx) for q in query]
    if not isinstance(query, dict):
        return query
    if "sparse_vector" in query and isinstance(query["sparse_vector"], dict):
        try:
            sv = SparseVectorQuery.model_validate(query["sparse_vector"]).model_dump(exclude_none=True)
        except ValidationError as exc:
            raise parse_error(exc, "sparse_vector") from None
        field_name = sv.get("field", SPARSE_FIELD)
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
        return ctx.dialect.sparse_query(field_name, weights, float(sv.get("boost", 1.0)))
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


def _ids_body(ctx: SearchContext, query: dict, size: int, min_score: float | None = None) -> dict[str, Any]:
    """A leaf's engine search: ranked ids and scores only."""
    body: dict[str, Any] = {"query": query, "size": size, "_source": False, "track_total_hits": False}
    if min_score is not None:
        body["min_score"] = min_score
    if ctx.search_timeout is not None:
        body["timeout"] = ctx.search_timeout
    return body


@dataclass
class Leaf:
    """A leaf retriever ready to run: its engine search and, once sent, the engine's answer."""

    name: str
    body: dict[str, Any]
    started: float  # when its preparation began (the stage's time includes embedding the query)
    k: int | None = None  # kNN: the top k of the answer count
    answer: dict[str, Any] | None = None


@dataclass
class Compound:
    """``rrf``/``linear``/``text_similarity_reranker`` ready to run: its (validated) body and its
    children's plans, in the order of the body's ``retrievers`` (the reranker: one)."""

    kind: str
    body: dict[str, Any]
    children: list[Plan]
    window: int
    started: float


Plan = Leaf | Compound


def leaves(plan: Plan) -> list[Leaf]:
    """The leaves of a plan, in the tree's order."""
    return [plan] if isinstance(plan, Leaf) else [leaf for child in plan.children for leaf in leaves(child)]


async def prepare(spec: dict, ctx: SearchContext, window: int) -> Plan:
    """A retriever (sub)tree (validated by :func:`parse`) as a plan: every leaf's engine search built,
    the query texts embedded concurrently; nothing is searched yet."""
    kind, body = _one_key(spec, "retriever")
    started = time.perf_counter()
    if kind == "standard":
        query = body.get("query", {"match_all": {}})
        _collect_text(query, ctx)
        filtered = _filtered(await rewrite_sparse(query, ctx), ctx, body.get("filter"))
        ctx.lexical.append(filtered)
        ctx.score_cut |= body.get("min_score") is not None
        return Leaf("sparse" if "sparse_vector" in str(query) else "bm25",
                    _ids_body(ctx, filtered, window, body.get("min_score")), started)
    if kind == "sparse":
        sv = {"field": body.get("field", SPARSE_FIELD),
              **{k: v for k, v in body.items() if k not in ("field", "filter")}}
        query = _filtered(await rewrite_sparse({"sparse_vector": sv}, ctx), ctx, body.get("filter"))
        ctx.lexical.append(query)
        return Leaf("sparse", _ids_body(ctx, query, window), started)
    if kind == "knn":
        if "query_vector" in body:
            vector = body["query_vector"]
        else:
            builder = body["query_vector_builder"]["text_embedding"]
            text = builder["model_text"]
            ctx.query_texts.append(text)
            dense, _ = await asyncio.to_thread(ctx.encode_query, text, builder.get("model_id"))
            vector = dense.tolist()
        k = int(body.get("k", window))
        leaf_filter = body.get("filter") or []
        filters = list(ctx.filters) + (leaf_filter if isinstance(leaf_filter, list) else [leaf_filter])
        num_candidates = int(body.get("num_candidates", max(k, 100)))
        flt = {"bool": {"filter": filters}} if filters else None
        if body["field"] == VECTOR_FIELD:  # long products: the best of their chunk vectors counts
            clause = ctx.dialect.best_chunk_knn_query(VECTOR_FIELD, CHUNKS_FIELD, vector, k, num_candidates, flt)
        else:
            clause = ctx.dialect.knn_query(body["field"], vector, k, num_candidates, flt)
        return Leaf("knn", _ids_body(ctx, clause, k, body.get("similarity")), started, k=k)
    if kind in ("rrf", "linear"):
        sub_window = int(body.get("rank_window_size", window))
        children = await asyncio.gather(*(prepare(_unwrap(s)[0], ctx, sub_window) for s in body["retrievers"]))
        compound = Compound(kind, body, list(children), window, started)
        if float((body.get("agreement_gate") or {}).get("language_boost") or 0) > 0:
            for leaf in leaves(compound):
                leaf.body["docvalue_fields"] = [LANG_FIELD]  # the hits' languages, for the language preference
        return compound
    if kind == "text_similarity_reranker":
        rerank_window = int(body.get("rank_window_size", 10))
        child = await prepare(body["retriever"], ctx, max(rerank_window, window))
        ctx.score_cut |= body.get("min_score") is not None
        return Compound(kind, body, [child], window, started)
    raise SearchError(400, "x_content_parse_exception", f"unknown retriever [{kind}]")


async def evaluate(plan: Plan, ctx: SearchContext) -> Ranked:
    """The ranked ids of a plan whose leaves have their answers: leaves cut to k, compounds fused
    (or reranked) bottom-up."""
    if isinstance(plan, Leaf):
        answer = plan.answer or {"hits": {"hits": []}}
        if "docvalue_fields" in plan.body:
            for hit in answer["hits"]["hits"]:
                value = (hit.get("fields") or {}).get(LANG_FIELD)
                if value:
                    ctx.doc_lang[hit["_id"]] = value[0]
        ranked = _hits_to_ranked(answer)
        ranked = ranked[:plan.k] if plan.k is not None else ranked
        ctx.record(plan.name, plan.started, ranked)
        return ranked
    kind, body, window = plan.kind, plan.body, plan.window
    if kind in ("rrf", "linear"):
        sub_window = int(body.get("rank_window_size", window))
        subs = [_unwrap(s) for s in body["retrievers"]]
        lists = await asyncio.gather(*(evaluate(child, ctx) for child in plan.children))
        gate = AgreementGate.model_validate(body["agreement_gate"]) if body.get("agreement_gate") else None
        reference = plan.children[gate.reference] if gate is not None else None
        fused = fusion.gated_fusion(
            lists, [w for _, w, _ in subs], [isinstance(e, dict) and bool(e.get("gated")) for e in body["retrievers"]],
            kind=kind, normalizers=[n or body.get("normalizer", "none") for _, _, n in subs],
            rank_constant=int(body.get("rank_constant", 60)), window=sub_window, gate=gate,
            similarity=ctx.dialect.knn_similarity if isinstance(reference, Leaf) and reference.name == "knn" else None,
            lang=ctx.doc_lang, query_language=ctx.query_language() if gate is not None and gate.language_boost else None)
        ranked = fused[:max(window, sub_window)]
        ctx.record(kind, plan.started, ranked)
        return ranked
    # text_similarity_reranker
    rerank_window = int(body.get("rank_window_size", 10))
    candidates = await evaluate(plan.children[0], ctx)
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
    ctx.record("rerank", plan.started, ranked)
    return ranked


async def run(spec: dict, ctx: SearchContext, window: int,
              also: Callable[[], list[dict[str, Any]]] | None = None) -> tuple[Ranked, list[dict[str, Any]]]:
    """Execute one retriever tree (validated by :func:`parse`): up to ``window`` ranked ids.

    Every leaf goes to the engine in one ``_msearch``; ``also`` (called once the leaves are
    prepared, when :attr:`SearchContext.lexical` is known) gives more searches to send in the
    same round trip (e.g. the hit count), whose answers come back second.
    """
    plan = await prepare(spec, ctx, window)
    searches = leaves(plan)
    extra = also() if also is not None else []
    answers = await ctx.msearch([leaf.body for leaf in searches] + extra)
    for leaf, answer in zip(searches, answers):
        leaf.answer = answer
    return await evaluate(plan, ctx), answers[len(searches):]


async def fetch_texts(ctx: SearchContext, ids: list[str], field_name: str) -> dict[str, str]:
    """``field_name`` plus category and description (for context) of each id, for the reranker."""
    resp = await ctx.search({"query": {"ids": {"values": ids}}, "size": len(ids), "_source": rerank_fields(field_name)})
    return {hit["_id"]: rerank_text(hit.get("_source", {}), field_name) for hit in resp["hits"]["hits"]}


LEXICAL_LEAVES = ("bm25", "sparse")  # gated by kNN's agreement; the exact-title leaf never is


def expand_hybrid(spec: dict, defaults: dict[str, Any]) -> dict:
    """The ``{"query": {"hybrid": {...}}}`` shorthand as an explicit retriever tree.

    ``{"query": text, "fields": [...], "sparse": bool, "rerank": bool, "rank_window_size": n,
    "fusion": "rrf" | "linear", "weights": {"bm25": w, "knn": w, "sparse": w, "exact": w, "language": w},
    "normalizer": name, "gate_k": k, "gate_margin": cosine | false, "within_knn": bool}`` -> BM25 + kNN (+ sparse)
    -> RRF/linear (-> reranker); unspecified keys come from settings (fitted on training queries:
    ``python -m bench.tune_fusion``).  A leaf weighted 0 is not run.

    The gate (:func:`service.fusion.gate_open`): a lexical leaf counts for a query only when kNN
    backs its top hit: in kNN's top ``gate_k``, or within ``gate_margin`` (cosine) of kNN's best
    (``gate_margin: false`` and ``gate_k: 0``: no gate); a hit of the exact-title leaf opens it too.
    While it is open, documents in the language of that evidence gain ``weights.language``
    (:func:`service.fusion.prefer_languages`): a shopper whose language has the product sees its
    listings in that language first.  ``within_knn``: the lexical leaves reorder
    kNN's candidates and add none.  ``exact`` > 0: documents whose whole title is the query
    (``exact_field``, a keyword with a case/accent/width-folding normalizer; the query's spaces collapsed) are a leaf of
    their own, never gated: a shopper who types a product type, name or model number exactly as
    the catalog spells it gets that product, in whichever language it is listed.
    """
    try:
        spec = HybridQuery.model_validate(spec).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise parse_error(exc, "query.hybrid") from None
    text = spec["query"]
    window = int(spec.get("rank_window_size", defaults["rank_window_size"]))
    weights = {**defaults.get("weights", {}), **(spec.get("weights") or {})}
    leaves: dict[str, dict] = {
        "bm25": {"standard": {"query": {"multi_match": {"query": text, "type": "best_fields",
                                                        "fields": spec.get("fields", defaults["fields"])}}}},
        "knn": {"knn": {"field": VECTOR_FIELD, "k": window,
                        "num_candidates": max(window, int(defaults.get("num_candidates", 100))),
                        "query_vector_builder": {"text_embedding": {"model_text": text}}}},
    }
    if spec.get("sparse", defaults["sparse"]):
        leaves["sparse"] = {"sparse": {"field": SPARSE_FIELD, "query": text}}
    if float(weights.get("exact", 0.0)) > 0 and defaults.get("exact_field"):
        # the query is a document's whole title (normalised by the field's normalizer): never gated
        leaves["exact"] = {"standard": {"query": {"term": {defaults["exact_field"]: {"value": " ".join(text.split())}}}}}
    subs = [(leaf, float(weights.get(name, 1.0))) for name, leaf in leaves.items()
            if float(weights.get(name, 1.0)) > 0]
    if not subs:
        raise bad_request("[hybrid] every retriever has weight 0", "illegal_argument_exception")
    fusion_kind = spec.get("fusion", defaults.get("fusion", "rrf"))
    gate_k = int(spec.get("gate_k", defaults.get("gate_k", 0)))
    margin = spec.get("gate_margin", defaults.get("gate_margin"))
    margin = None if margin is False else margin
    names = [name for name in leaves if float(weights.get(name, 1.0)) > 0]
    within = bool(spec.get("within_knn", defaults.get("within_knn", False)))
    gating = bool(gate_k or margin is not None)
    gate: dict[str, Any] = {}
    if (gating or within) and "knn" in names:
        gate = {"reference": names.index("knn"), "k": gate_k}
        if margin is not None:
            gate["margin"] = float(margin)
        if gating and "exact" in names:
            gate["anchor"] = names.index("exact")
        if gating and float(weights.get("language", 0.0)) > 0:
            gate["language_boost"] = float(weights["language"])
        if within:
            gate["within"] = True
        gate = {"agreement_gate": gate}
    gated = {"gated": True} if gating and gate else {}
    if fusion_kind == "linear":
        norm = spec.get("normalizer", defaults.get("normalizer", "zscore"))
        if norm not in fusion.NORMALIZERS:
            raise bad_request(f"[hybrid] unknown normalizer [{norm}]", "illegal_argument_exception")
        tree: dict = {"linear": {"retrievers": [{"retriever": s, "weight": w, "normalizer": norm,
                                                 **(gated if n in LEXICAL_LEAVES else {})}
                                                for (s, w), n in zip(subs, names)],
                                 "rank_window_size": window, **gate}}
    else:
        tree = {"rrf": {"retrievers": [{"retriever": s, "weight": w, **(gated if n in LEXICAL_LEAVES else {})}
                                       for (s, w), n in zip(subs, names)], "rank_window_size": window,
                        "rank_constant": int(spec.get("rank_constant", defaults["rank_constant"])), **gate}}
    if spec.get("rerank", defaults["rerank"]):
        tree = {"text_similarity_reranker": {"retriever": tree, "field": defaults["rerank_field"],
                                             "inference_text": text,
                                             "rank_window_size": defaults["rerank_window"]}}
    return tree
