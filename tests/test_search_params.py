"""Service-run searches (retrievers, hybrid) honour every ``_search`` parameter or refuse it by name.

Differential where the engine can answer the same request: a ``standard`` retriever is
the engine's own query, and a hybrid query with only its BM25 leaf is the same
``multi_match``; both are sent to the engine directly and through the service, and the
fields that must match are compared.  The catalog is written to the engine directly
(vectors from the real encoder), so these tests need no ingest worker.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.conftest import RUN

PRODUCTS = [
    {"id": "chair-1", "title": "Ergonomic office chair", "description": "Mesh office chair with lumbar support.",
     "brand": "Nordvik", "category": "Furniture", "price": 259.0},
    {"id": "chair-2", "title": "Office chair", "description": "A simple chair for the office, grey fabric.",
     "brand": "Bergmann", "category": "Furniture", "price": 99.0},
    {"id": "chair-3", "title": "Gaming chair with headrest and armrests for long sessions",
     "description": "Racing style seat.", "brand": "Tianlu", "category": "Furniture", "price": 189.0},
    {"id": "stool-1", "title": "Bar stool", "description": "Tall kitchen stool, oak seat.", "brand": "Soleado",
     "category": "Furniture", "price": 49.0},
    {"id": "desk-1", "title": "Standing desk", "description": "Electric height adjustable office desk.",
     "brand": "Nordvik", "category": "Furniture", "price": 399.0},
    {"id": "hp-1", "title": "Wireless noise-cancelling headphones", "description": "Bluetooth over-ear headphones.",
     "brand": "Nordvik", "category": "Audio", "price": 199.0},
    {"id": "hp-2", "title": "In-ear earbuds", "description": "Small wireless earbuds with charging case.",
     "brand": "Bergmann", "category": "Audio", "price": 79.0},
    {"id": "hose-1", "title": "Garden hose thirty meters", "description": "Flexible hose for the garden.",
     "brand": "Soleado", "category": "Garden", "price": 29.0},
    {"id": "pan-1", "title": "Non-stick frying pan", "description": "Aluminium pan for induction hobs.",
     "brand": "Lumiere", "category": "Kitchen", "price": 39.0},
    {"id": "lamp-1", "title": "Desk lamp", "description": "LED lamp for the home office.", "brand": "Hanami",
     "category": "Lighting", "price": 59.0},
]
FIELDS = ["title", "description"]
HIDE_VECTORS = {"excludes": ["embedding", "chunks", "sparse"]}


@pytest.fixture(scope="module")
def catalog(engine, encoder):
    """The products embedded here and written straight to the engine (no queue involved)."""
    index = f"test-{RUN}-params"
    write_catalog(engine, index, encoder)
    yield index
    engine.delete_index(index)


def write_catalog(engine, index: str, encoder, vectors: list[list[float]] | None = None,
                  model: str | None = None) -> None:
    """:data:`PRODUCTS` written to a new ``index`` straight to the engine, embedded by ``encoder``
    (or given ``vectors``, recorded as embedded by ``model``)."""
    from pipelines.ingest.documents import engine_source, validate

    products = [validate(p, max_bytes=100_000) for p in PRODUCTS]
    sparse = [None] * len(products)
    if vectors is None:
        enc = encoder.encode([p.embedding_text() for p in products])
        vectors, sparse = enc.dense.tolist(), enc.sparse or sparse
    model = model or encoder.model_id
    engine.create_products_index(index, len(vectors[0]), model)
    docs = [(p.id, engine_source(p, vectors[i], sparse[i], model, False)) for i, p in enumerate(products)]
    items = engine.bulk_index(index, docs, refresh=True)
    assert all(item.ok for item in items), items


def post(url: str, path: str, body: Any = None, params: Any = None) -> httpx.Response:
    return httpx.post(url + path, json=body if body is not None else {}, params=params, timeout=120)


def engine_post(url: str, path: str, body: Any = None, params: Any = None) -> httpx.Response:
    """The engine's own answer as the service relays a search it passes through: ``_source`` filters
    rewritten onto the kept document, each ``_source`` the document as sent (:mod:`service.source`)."""
    from service import source as source_mod

    sent = source_mod.relay(path, json.dumps(body if body is not None else {}).encode(), list((params or {}).items()))
    resp = httpx.post(url + path, content=sent.content, params=sent.params,
                      headers={"content-type": "application/json"}, timeout=120)
    hidden = source_mod.hide_answer(path, resp.content, sent.fields)
    return resp if hidden is None else httpx.Response(resp.status_code, json=hidden)


def assert_es_error(resp: httpx.Response, status: int = 400, names: str | None = None) -> dict:
    """An answer in Elasticsearch's error shape (``root_cause``, ``type``, ``reason``, ``status``)."""
    assert resp.status_code == status, resp.text
    data = resp.json()
    err = data["error"]
    assert data["status"] == status
    assert isinstance(err["type"], str) and isinstance(err["reason"], str)
    assert err["root_cause"] and err["root_cause"][0]["type"] == err["type"]
    if names:
        assert f"[{names}]" in err["reason"], err["reason"]
    return err


def ids(resp: dict) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


def comparable(resp: dict, scores: bool = True) -> dict:
    """The parts of a search answer that must match between the engine and the service."""
    hits = resp["hits"]
    keep = ("_id", "_index", "_source", "sort", "fields", "_version", "_seq_no", "_primary_term",
            *(("_score",) if scores else ()))
    out = {"hits": [{k: h[k] for k in keep if k in h} for h in hits["hits"]], "has_total": "total" in hits}
    if "total" in hits:
        out["total"] = hits["total"]
    if scores:
        out["max_score"] = hits["max_score"]
    if "aggregations" in resp:
        out["aggregations"] = resp["aggregations"]
    return out


def standard(query: dict, **extra: Any) -> dict:
    return {"retriever": {"standard": {"query": query}}, **extra}


MATCH = {"multi_match": {"query": "office chair", "fields": FIELDS}}
BM25_ONLY = {"query": "office chair", "fields": FIELDS, "weights": {"knn": 0, "sparse": 0}, "rerank": False}


# --- differential: a standard retriever is the engine's own query ---------------------------------

URL_CASES = [
    {}, {"size": "3"}, {"from": "2", "size": "2"}, {"from": "500"}, {"_source": "false"}, {"_source": "title,price"},
    {"_source_includes": "title"}, {"_source_excludes": "description,embedding,chunks,sparse,model"},
    {"_source": "true", "_source_includes": "brand"}, {"_source": "false", "_source_includes": "brand"},
    {"_source": "title", "_source_excludes": "title"}, {"track_total_hits": "false"}, {"track_total_hits": "2"},
    {"track_total_hits": "true"}, {"rest_total_hits_as_int": "true"}, {"version": "true"},
    {"seq_no_primary_term": "true"}, {"timeout": "30s"}, {"sort": "price:asc"},
    {"stored_fields": "_none_", "_source": "false"},
    {"filter_path": "hits.hits._id,hits.total"},
]


@pytest.mark.parametrize("params", URL_CASES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()) or "none")
def test_url_params_match_the_engine(catalog, svc, eng, params):
    body = {"_source": HIDE_VECTORS} if not any(k.startswith("_source") for k in params) else {}
    direct = engine_post(eng, f"/{catalog}/_search", {"query": MATCH, **body}, params)
    served = post(svc, f"/{catalog}/_search", standard(MATCH, **body), params)
    assert served.status_code == direct.status_code == 200, served.text
    if "filter_path" in params:
        assert served.json() == direct.json()
    else:
        assert comparable(served.json()) == comparable(direct.json())


BODY_CASES = [
    {"size": 3}, {"from": 1, "size": 2}, {"from": 500}, {"_source": False}, {"_source": ["title"]},
    {"_source": {"includes": ["title", "price"], "excludes": ["price"]}}, {"track_total_hits": False},
    {"track_total_hits": 2}, {"track_total_hits": True}, {"min_score": 0.9},
    {"post_filter": {"range": {"price": {"lte": 150}}}, "aggs": {"cats": {"terms": {"field": "brand.raw"}}}},
    {"post_filter": {"term": {"category.raw": "Furniture"}}, "aggs": {"p": {"max": {"field": "price"}}}},
    {"sort": [{"price": "desc"}]}, {"sort": [{"price": "asc"}], "track_scores": True},
    {"sort": [{"price": "asc"}], "size": 2, "from": 1}, {"timeout": "30s"}, {"version": True},
    {"docvalue_fields": ["price"]}, {"fields": ["title"], "_source": False},
]


@pytest.mark.parametrize("extra", BODY_CASES, ids=lambda e: json.dumps(e, separators=(",", ":"))[:60])
def test_body_keys_match_the_engine(catalog, svc, eng, extra):
    extra = {"_source": HIDE_VECTORS, **extra}
    direct = engine_post(eng, f"/{catalog}/_search", {"query": MATCH, **extra})
    served = post(svc, f"/{catalog}/_search", standard(MATCH, **extra))
    assert served.status_code == direct.status_code == 200, served.text
    assert comparable(served.json()) == comparable(direct.json())


@pytest.mark.parametrize("params", [{"typed_keys": "true"}, {"rest_total_hits_as_int": "true", "typed_keys": "true"}])
def test_typed_keys_and_total_as_int_match_the_engine(catalog, svc, eng, params):
    body = {"size": 2, "_source": False, "aggs": {"cats": {"terms": {"field": "category.raw"}},
                                                   "top": {"max": {"field": "price"}}}}
    direct = engine_post(eng, f"/{catalog}/_search", {"query": MATCH, **body}, params).json()
    served = post(svc, f"/{catalog}/_search", standard(MATCH, **body), params).json()
    assert comparable(served) == comparable(direct)
    assert "sterms#cats" in served["aggregations"]


def test_rest_total_hits_as_int_rules_match_the_engine(catalog, svc, eng):
    params = {"rest_total_hits_as_int": "true"}
    for extra in ({"track_total_hits": False}, {"track_total_hits": 3}):
        direct = engine_post(eng, f"/{catalog}/_search", {"query": MATCH, **extra}, params)
        served = post(svc, f"/{catalog}/_search", standard(MATCH, **extra), params)
        assert served.status_code == direct.status_code
        if direct.status_code == 200:
            assert served.json()["hits"]["total"] == direct.json()["hits"]["total"] == -1
        else:
            assert assert_es_error(served)["type"] == direct.json()["error"]["type"]


# --- differential: the hybrid shorthand with only its BM25 leaf is the same multi_match ---------

@pytest.mark.parametrize("extra", [{}, {"size": 2}, {"from": 2, "size": 2}, {"_source": ["title"]},
                                   {"track_total_hits": 1}, {"post_filter": {"range": {"price": {"gte": 100}}}}])
def test_hybrid_bm25_only_is_the_multi_match(catalog, svc, eng, extra):
    direct = engine_post(eng, f"/{catalog}/_search", {"query": {"multi_match": {
        "query": "office chair", "type": "best_fields", "fields": FIELDS}}, "_source": HIDE_VECTORS, **extra}).json()
    served = post(svc, f"/{catalog}/_search", {"query": {"hybrid": BM25_ONLY}, "_source": HIDE_VECTORS,
                                               **extra}).json()
    scores = [h["_score"] for h in direct["hits"]["hits"]]
    assert len(set(scores)) == len(scores), "the catalog must give distinct BM25 scores for this query"
    assert comparable(served, scores=False) == comparable(direct, scores=False)


def test_hybrid_total_counts_the_lexical_part_not_knn_candidates(catalog, svc, eng):
    lexical = post(eng, f"/{catalog}/_count", {"query": {"multi_match": {"query": "office chair",
                                                                         "fields": FIELDS}}}).json()["count"]
    served = post(svc, f"/{catalog}/_search", {"query": {"hybrid": {"query": "office chair", "fields": FIELDS}},
                                               "size": 20}).json()
    assert served["hits"]["total"] == {"value": lexical, "relation": "eq"}
    assert len(served["hits"]["hits"]) > lexical  # the kNN leaf adds hits the lexical part does not match
    knn_only = post(svc, f"/{catalog}/_search", {"retriever": {"knn": {
        "field": "embedding", "k": 4, "num_candidates": 10,
        "query_vector_builder": {"text_embedding": {"model_text": "office chair"}}}}}).json()
    assert knn_only["hits"]["total"] == {"value": 4, "relation": "eq"} and len(knn_only["hits"]["hits"]) == 4


def test_hybrid_exact_title_leaf(catalog, svc):
    """The query spelled as a product's whole title (case, accents, spaces aside) finds that product first."""
    exact_only = {"query": "  OFFICE   chair ", "weights": {"bm25": 0, "knn": 0, "exact": 1}}
    hits = post(svc, f"/{catalog}/_search", {"query": {"hybrid": exact_only}}).json()["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["chair-2"]
    fused = {"query": "Office Chair", "weights": {"exact": 1.0}}
    hits = post(svc, f"/{catalog}/_search", {"query": {"hybrid": fused}}).json()["hits"]["hits"]
    assert hits[0]["_id"] == "chair-2" and len(hits) > 1


def test_url_params_on_hybrid(catalog, svc):
    body = {"query": {"hybrid": {"query": "office chair"}}}
    assert len(post(svc, f"/{catalog}/_search", body, {"size": "3"}).json()["hits"]["hits"]) == 3
    assert post(svc, f"/{catalog}/_search", body, {"from": "500"}).json()["hits"]["hits"] == []
    hit = post(svc, f"/{catalog}/_search", body, {"_source": "false", "size": "1"}).json()["hits"]["hits"][0]
    assert "_source" not in hit
    hit = post(svc, f"/{catalog}/_search", body, {"_source_includes": "title", "size": "1"}).json()["hits"]["hits"][0]
    assert set(hit["_source"]) == {"title"}
    resp = post(svc, f"/{catalog}/_search", body, {"track_total_hits": "false"}).json()
    assert "total" not in resp["hits"]
    resp = post(svc, f"/{catalog}/_search", body, {"rest_total_hits_as_int": "true"}).json()
    assert isinstance(resp["hits"]["total"], int)
    resp = post(svc, f"/{catalog}/_search", body, {"explain": "true", "size": "1"}).json()
    assert resp["hits"]["hits"][0]["_explanation"]["details"]
    resp = post(svc, f"/{catalog}/_search", body, {"timeout": "30s"}).json()
    assert resp["timed_out"] is False and resp["hits"]["hits"]


def test_leaf_min_score_matches_the_engine(catalog, svc, eng):
    direct = engine_post(eng, f"/{catalog}/_search", {"query": MATCH, "min_score": 1.0, "_source": False}).json()
    served = post(svc, f"/{catalog}/_search", {"retriever": {"standard": {"query": MATCH, "min_score": 1.0}},
                                               "_source": False}).json()
    assert comparable(served) == comparable(direct)
    everything = post(eng, f"/{catalog}/_count", {"query": MATCH}).json()["count"]
    assert 0 < direct["hits"]["total"]["value"] < everything  # the cut is real


def test_min_score_applies_to_the_fused_score(catalog, svc):
    body = {"query": {"hybrid": {"query": "office chair"}}, "size": 20}
    fused = post(svc, f"/{catalog}/_search", body).json()["hits"]["hits"]
    cut = fused[2]["_score"]
    kept = post(svc, f"/{catalog}/_search", {**body, "min_score": cut}).json()
    assert ids(kept) == [h["_id"] for h in fused if h["_score"] >= cut]
    assert kept["hits"]["total"]["value"] == len(ids(kept))
    none = post(svc, f"/{catalog}/_search", {**body, "min_score": 1000}).json()
    assert none["hits"]["hits"] == [] and none["hits"]["total"]["value"] == 0


def test_post_filter_filters_hits_not_aggregations(catalog, svc):
    body = {"query": {"hybrid": {"query": "office chair"}}, "size": 20,
            "aggs": {"cats": {"terms": {"field": "category.raw"}}}}
    plain = post(svc, f"/{catalog}/_search", body).json()
    filtered = post(svc, f"/{catalog}/_search", {**body, "post_filter": {"term": {"category.raw": "Audio"}}}).json()
    assert filtered["aggregations"] == plain["aggregations"]
    assert set(ids(filtered)) == {h["_id"] for h in plain["hits"]["hits"] if h["_source"]["category"] == "Audio"}
    assert ids(filtered) == [i for i in ids(plain) if i in set(ids(filtered))]  # fused order kept


def test_sort_on_the_fused_list(catalog, svc):
    body = {"query": {"hybrid": {"query": "office chair"}}, "size": 20}
    fused = post(svc, f"/{catalog}/_search", body).json()["hits"]["hits"]
    by_price = post(svc, f"/{catalog}/_search", {**body, "sort": [{"price": "asc"}]}).json()
    assert ids(by_price) == [h["_id"] for h in sorted(fused, key=lambda h: h["_source"]["price"])]
    assert by_price["hits"]["hits"][0]["sort"] == [min(h["_source"]["price"] for h in fused)]
    assert by_price["hits"]["max_score"] is None and by_price["hits"]["hits"][0]["_score"] is None
    by_score = post(svc, f"/{catalog}/_search", {**body, "sort": ["_score"]}).json()
    assert ids(by_score) == [h["_id"] for h in fused]
    assert_es_error(post(svc, f"/{catalog}/_search", {**body, "sort": [{"_score": "asc"}]}), names="sort")
    assert_es_error(post(svc, f"/{catalog}/_search", {**body, "sort": ["_score", "price"]}), names="sort")


# --- refusals and malformed values --------------------------------------------------------------

KNN = {"field": "embedding", "k": 3, "num_candidates": 10,
       "query_vector_builder": {"text_embedding": {"model_text": "chair"}}}
MALFORMED = [
    ({"retriever": {"knn": {**KNN, "query_vector_builder": "oops"}}}, "retriever.knn.query_vector_builder"),
    ({"retriever": {"rrf": {"retrievers": [{"knn": KNN}], "rank_window_size": "x"}}}, "retriever.rrf.rank_window_size"),
    ({"retriever": {"rrf": {"retrievers": [{"knn": KNN}], "rank_constant": 0}}}, "retriever.rrf.rank_constant"),
    ({"retriever": {"knn": {**KNN, "k": "many"}}}, "retriever.knn.k"),
    ({"retriever": {"knn": {**KNN, "k": -1}}}, "retriever.knn.k"),
    ({"retriever": {"knn": {**KNN, "query_vector": [1.0]}}}, "retriever.knn"),
    ({"retriever": {"knn": {**KNN, "unknown_knob": 1}}}, "retriever.knn.unknown_knob"),
    ({"retriever": {"standard": "match everything"}}, "retriever"),
    ({"retriever": {"linear": {"retrievers": [{"retriever": {"knn": KNN}, "weight": "heavy"}]}}},
     "retriever.linear.retrievers.0.weight"),
    ({"retriever": {"text_similarity_reranker": {"retriever": {"knn": KNN}, "field": "title"}}},
     "retriever.text_similarity_reranker.inference_text"),
    ({"retriever": [1, 2]}, "search.retriever"),
    ({"retriever": {"standard": {"query": {"sparse_vector": {"field": "sparse", "query_vector": "oops"}}}}},
     "sparse_vector.query_vector"),
    ({"retriever": {"standard": {"query": {"bool": {"should": [
        {"sparse_vector": {"field": "sparse", "query_vector": {"chair": 1.0}, "boost": "x"}}]}}}}}, "sparse_vector.boost"),
    ({"retriever": {"standard": {"query": {"sparse_vector": {"field": "sparse", "query_vector": {"chair": "x"}}}}}},
     "sparse_vector.query_vector.chair"),
    ({"query": {"hybrid": {"query": "chair", "rank_window_size": "x"}}}, "query.hybrid.rank_window_size"),
    ({"query": {"hybrid": {"query": "chair", "weights": {"bm25": "high"}}}}, "query.hybrid.weights.bm25"),
    ({"query": {"hybrid": {"query": ["chair"]}}}, "query.hybrid.query"),
    ({"query": {"hybrid": "chair"}}, "hybrid"),
    ({"query": {"hybrid": {"query": "chair"}}, "size": -1}, "size"),
    ({"query": {"hybrid": {"query": "chair"}}, "from": "x"}, "search.from"),
    ({"query": {"hybrid": {"query": "chair"}}, "size": [3]}, "search.size"),
    ({"query": {"hybrid": {"query": "chair"}}, "track_total_hits": "x"}, "search.track_total_hits"),
    ({"query": {"hybrid": {"query": "chair"}}, "track_total_hits": -5}, "track_total_hits"),
    ({"query": {"hybrid": {"query": "chair"}}, "timeout": "soon"}, "timeout"),
    ({"query": {"hybrid": {"query": "chair"}}, "min_score": "x"}, "search.min_score"),
    ({"query": {"hybrid": {"query": "chair"}}, "_source": 3}, "search._source"),
    ({"query": {"hybrid": {"query": "chair"}}, "from": 9995, "size": 10}, None),
    ({"query": {"hybrid": {"query": "chair"}}, "collapse": {"field": "brand.raw"}}, "collapse"),
    ({"query": {"hybrid": {"query": "chair"}}, "search_after": [1]}, "search_after"),
    ({"query": {"hybrid": {"query": "chair"}}, "suggest": {}}, "suggest"),
    ({"query": {"hybrid": {"query": "chair"}}, "rescore": {}}, "rescore"),
    ({"query": {"hybrid": {"query": "chair"}, "match": {"title": "x"}}}, "hybrid"),
    ({"retriever": {"knn": KNN}, "query": {"match_all": {}}}, "retriever"),
    ({"query": {"hybrid": {"query": "chair"}}, "stored_fields": "_none_", "_source": ["title"]}, "stored_fields"),
]


@pytest.mark.parametrize("body,names", MALFORMED, ids=[n or "window" for _, n in MALFORMED])
def test_malformed_values_are_400_naming_the_key(catalog, svc, body, names):
    err = assert_es_error(post(svc, f"/{catalog}/_search", body), 400, names)
    assert err["type"] in ("x_content_parse_exception", "illegal_argument_exception", "parsing_exception")


@pytest.mark.parametrize("query", [{"range": {"price": {"gte": "not a number"}}}, {"no_such_query": {}},
                                   {"match": {"title": {"query": "x", "bogus": 1}}}, {"term": "x"}])
def test_query_dsl_errors_are_the_engines(catalog, svc, eng, query):
    direct = engine_post(eng, f"/{catalog}/_search", {"query": query})
    served = post(svc, f"/{catalog}/_search", standard(query))
    assert direct.status_code == 400
    assert assert_es_error(served, 400)["type"] == direct.json()["error"]["type"]


@pytest.mark.parametrize("params,names", [
    ({"size": "x"}, "size"), ({"from": "-1"}, "from"), ({"track_total_hits": "lots"}, "track_total_hits"),
    ({"_source": "maybe", "_source_includes": "1"}, None), ({"explain": "perhaps"}, "explain"),
    ({"typed_keys": "2"}, "typed_keys"), ({"scroll": "1m"}, "scroll"), ({"q": "chair"}, "q"),
    ({"terminate_after": "1"}, "terminate_after"), ({"no_such_param": "1"}, "no_such_param"),
    ({"rest_total_hits_as_int": "true", "track_total_hits": "5"}, "rest_total_hits_as_int"),
    ({"timeout": "soon"}, "timeout"),
])
def test_bad_url_params_are_400_naming_them(catalog, svc, params, names):
    resp = post(svc, f"/{catalog}/_search", {"query": {"hybrid": {"query": "chair"}}}, params)
    if names is None:  # _source=maybe is a field list in Elasticsearch: a valid request
        assert resp.status_code == 200
    else:
        assert_es_error(resp, 400, names)


# --- _msearch -----------------------------------------------------------------------------------

def msearch(url: str, path: str, items: list[dict], params: Any = None) -> httpx.Response:
    body = "".join(json.dumps(i) + "\n" for i in items).encode()
    return httpx.post(url + path, content=body, params=params, timeout=120,
                      headers={"content-type": "application/x-ndjson"})


def engine_msearch(url: str, path: str, items: list[dict], params: Any = None) -> httpx.Response:
    """:func:`msearch` straight to the engine, relayed as the service relays it (see :func:`engine_post`)."""
    from service import source as source_mod

    bodies = [source_mod.search_body(item) if n % 2 else item for n, item in enumerate(items)]
    resp = msearch(url, path, bodies, params)
    if b'"polyseek"' not in resp.content:
        return resp
    data = resp.json()
    rules = [source_mod.fields_rule(item) for item in items[1::2]]
    data["responses"] = [source_mod.hide(r, rule) for r, rule in zip(data["responses"], rules)]
    return httpx.Response(resp.status_code, json=data)


def test_msearch_engine_items_match_the_engine(catalog, svc, eng):
    items = [{"index": catalog},
             {"query": MATCH, "_source": False, "aggs": {"c": {"terms": {"field": "category.raw"}}}},
             {}, {"query": {"ids": {"values": ["chair-1"]}}, "_source": ["title"]},
             {"index": catalog}, {"query": {"match": {"title": "hose"}}, "size": 1}]
    params = {"typed_keys": "true", "rest_total_hits_as_int": "true"}
    direct = engine_msearch(eng, "/_msearch", items, params).json()["responses"]
    served = msearch(svc, "/_msearch", items, params).json()["responses"]
    assert [r["status"] for r in served] == [r["status"] for r in direct] == [200, 200, 200]
    assert [comparable(r) for r in served] == [comparable(r) for r in direct]
    assert catalog in {h["_index"] for h in served[1]["hits"]["hits"]}  # a {} header searches all indices


def test_msearch_service_items_honour_params_and_report_errors(catalog, svc, eng):
    items = [{"index": catalog}, standard(MATCH, size=2, aggs={"c": {"terms": {"field": "category.raw"}}},
                                          _source=False),
             {"index": catalog}, {"retriever": {"knn": {**KNN, "query_vector_builder": "oops"}}},
             {"index": catalog}, {"query": {"hybrid": {"query": "office chair"}}, "size": 1},
             {"index": catalog}, {"query": MATCH, "size": 2, "_source": False,
                                  "aggs": {"c": {"terms": {"field": "category.raw"}}}}]
    params = {"typed_keys": "true", "rest_total_hits_as_int": "true"}
    served = msearch(svc, f"/{catalog}/_msearch", items, params).json()["responses"]
    assert [r["status"] for r in served] == [200, 400, 200, 200]
    assert comparable(served[0]) == comparable(served[3])  # service item == engine item
    assert isinstance(served[0]["hits"]["total"], int) and "sterms#c" in served[0]["aggregations"]
    err = served[1]["error"]
    assert err["root_cause"][0]["type"] == err["type"] == "x_content_parse_exception"
    assert "query_vector_builder" in err["reason"]
    assert len(served[2]["hits"]["hits"]) == 1 and isinstance(served[2]["hits"]["total"], int)


def test_msearch_malformed_body_is_a_400(catalog, svc):
    body = f'{{"index": "{catalog}"}}\n{{not json\n'.encode()
    resp = httpx.post(f"{svc}/_msearch", content=body, headers={"content-type": "application/x-ndjson"})
    assert_es_error(resp, 400)
    resp = msearch(svc, "/_msearch", [{"index": catalog, "bogus": 1}, {"query": {"hybrid": {"query": "x"}}}])
    assert_es_error(resp, 400, "bogus")


# --- fuzz: no 5xx, every 4xx in Elasticsearch's shape ------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 20_000),
                     st.floats(allow_nan=False, allow_infinity=False, width=32),
                     st.sampled_from(["", "x", "10", "1s", "chair", "embedding", "title", "-1", "true"]))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "query", "field", "k", "x"]), inner,
                                                 max_size=3)), max_leaves=6)
_leaf_query = st.one_of(st.just({"match": {"title": "chair"}}), st.just({"match_all": {}}), _json)
_knn = st.fixed_dictionaries({"field": st.one_of(st.just("embedding"), _scalars)}, optional={
    "k": st.one_of(st.integers(-1, 30), _scalars), "num_candidates": st.one_of(st.integers(0, 50), _scalars),
    "query_vector_builder": st.one_of(st.just({"text_embedding": {"model_text": "chair"}}), _json),
    "query_vector": st.one_of(st.just([0.1] * 3), _json), "filter": _json, "similarity": _scalars})
_leaf = st.one_of(st.builds(lambda q: {"standard": {"query": q}}, _leaf_query), st.builds(lambda b: {"knn": b}, _knn),
                  st.builds(lambda b: {"standard": b}, _json))
_tree = st.one_of(_leaf, st.builds(lambda subs, w, c: {"rrf": {"retrievers": subs, "rank_window_size": w,
                                                               "rank_constant": c}},
                                   st.lists(_leaf, max_size=3), st.one_of(st.integers(-1, 50), _scalars),
                                   st.one_of(st.integers(0, 80), _scalars)),
                  st.builds(lambda subs, n: {"linear": {"retrievers": subs, "normalizer": n}},
                            st.lists(st.builds(lambda r, w: {"retriever": r, "weight": w}, _leaf, _scalars),
                                     max_size=2),
                            st.sampled_from(["none", "minmax", "zscore", "bad", 3])))
_hybrid = st.fixed_dictionaries({"query": st.one_of(st.just("office chair"), _scalars)}, optional={
    "fields": st.one_of(st.just(["title"]), _json), "rank_window_size": st.one_of(st.integers(-1, 50), _scalars),
    "fusion": st.sampled_from(["rrf", "linear", "max", 1]), "weights": _json, "filter": _json,
    "sparse": _scalars, "rerank": st.just(False)})
_top = {"size": st.one_of(st.integers(-2, 30), _scalars), "from": st.one_of(st.integers(-2, 30), _scalars),
        "min_score": _scalars, "track_total_hits": _scalars, "timeout": _scalars, "_source": _json,
        "post_filter": st.one_of(st.just({"term": {"category.raw": "Furniture"}}), _json),
        "sort": st.one_of(st.just([{"price": "asc"}]), st.just(["_score"]), _json), "explain": _scalars,
        "aggs": st.one_of(st.just({"c": {"terms": {"field": "category.raw"}}}), _json), "bogus": _scalars}
_bodies = st.one_of(
    st.builds(lambda t, extra: {"retriever": t, **extra}, _tree, st.fixed_dictionaries({}, optional=_top)),
    st.builds(lambda h, extra: {"query": {"hybrid": h}, **extra}, _hybrid, st.fixed_dictionaries({}, optional=_top)))


def test_fuzz_bodies_never_5xx(catalog, svc):
    client = httpx.Client(base_url=svc, timeout=120)

    @hsettings(max_examples=60, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(_bodies)
    def check(body: dict) -> None:
        resp = client.post(f"/{catalog}/_search", json=body)
        assert resp.status_code < 500, (body, resp.text)
        if resp.status_code >= 400:
            assert_es_error(resp, resp.status_code)
        else:
            assert "hits" in resp.json()

    try:
        check()
    finally:
        client.close()


def test_msearch_without_index_searches_the_allow_list(settings, catalog, eng):
    from bench.runner import serve_in_thread

    other = f"{catalog}-other"
    httpx.put(f"{eng}/{other}/_doc/x?refresh=true", json={"title": "office chair elsewhere"})
    url, stop = serve_in_thread(settings.model_copy(update={"index_allow_list": [catalog]}))
    try:
        items = [{}, {"query": {"match": {"title": "chair"}}, "size": 20},
                 {}, {"query": {"hybrid": {"query": "chair"}}, "size": 20},
                 {"index": other}, {"query": {"match_all": {}}}]
        responses = msearch(url, "/_msearch", items, {"rest_total_hits_as_int": "true"}).json()["responses"]
        assert [r["status"] for r in responses] == [200, 200, 403]
        for resp in responses[:2]:
            assert resp["hits"]["hits"] and {h["_index"] for h in resp["hits"]["hits"]} == {catalog}
            assert isinstance(resp["hits"]["total"], int)
        assert responses[2]["error"]["root_cause"][0]["type"] == "security_exception"
        bad = msearch(url, "/_msearch", [{}, {"query": {"hybrid": {"query": "chair"}}, "track_total_hits": 5}],
                      {"rest_total_hits_as_int": "true"}).json()["responses"][0]
        assert bad["status"] == 400 and "rest_total_hits_as_int" in bad["error"]["reason"]
    finally:
        stop()
        httpx.delete(f"{eng}/{other}")
