"""Foundation: the real engine started by the project, templates, bulk, BM25 / kNN / rank_features."""

from __future__ import annotations

import pytest

from pipelines.engine.dialect import sparse_query
from pipelines.engine.launcher import LocalEngine

DOCS = [
    ("a", {"title": "Kabellose Kopfhörer", "title_de": "Kabellose Kopfhörer", "lang": "de",
           "embedding": [1.0, 0.0, 0.0, 0.0], "sparse": {"kopf": 2.0, "hörer": 1.0}, "price": 99.0}),
    ("b", {"title": "无线降噪耳机", "title_zh": "无线降噪耳机", "lang": "zh",
           "embedding": [0.0, 1.0, 0.0, 0.0], "sparse": {"耳机": 3.0}, "price": 120.0}),
    ("c", {"title": "Garden hose 30 m", "title_en": "Garden hose 30 m", "lang": "en",
           "embedding": [0.0, 0.0, 1.0, 0.0], "sparse": {"hose": 1.5}, "price": 25.0}),
]


@pytest.fixture
def products(engine, index_name):
    assert engine.create_products_index(index_name, dims=4) is True
    results = engine.bulk_index(index_name, DOCS, refresh=True)
    assert all(r.ok for r in results), [r.error for r in results]
    return index_name


def test_status_reports_version_and_health(settings):
    status = LocalEngine(settings).status()
    assert status.running and status.health in ("green", "yellow")
    assert status.version == settings.engine_version
    for needed in ("opensearch-knn", "analysis-common", "mapper-extras"):
        assert needed in status.plugins


def test_index_from_template_has_vector_sparse_and_language_fields(engine, products):
    mapping = engine.request("GET", f"/{products}/_mapping")[products]["mappings"]["properties"]
    assert mapping["embedding"]["type"] == "knn_vector" and mapping["embedding"]["dimension"] == 4
    assert mapping["sparse"]["type"] == "rank_features"
    assert mapping["title_de"]["analyzer"] == "german"
    assert mapping["title_zh"]["analyzer"] == "polyseek_cjk"
    assert engine.create_products_index(products, dims=4) is False  # idempotent


def test_german_stemming_bm25(engine, products):
    hits = engine.search(products, {"query": {"match": {"title_de": "Kopfhörern"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["a"]


def test_cjk_bigram_bm25(engine, products):
    hits = engine.search(products, {"query": {"match": {"title_zh": "降噪"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["b"]


def test_knn(engine, products):
    body = {"size": 1, "query": engine.dialect.knn_query("embedding", [0.1, 0.0, 0.9, 0.0], 2, 10)}
    assert engine.search(products, body)["hits"]["hits"][0]["_id"] == "c"


def test_knn_with_filter(engine, products):
    flt = {"range": {"price": {"gte": 50}}}
    body = {"size": 3, "query": engine.dialect.knn_query("embedding", [0.1, 0.0, 0.9, 0.0], 3, 10, flt)}
    assert "c" not in [h["_id"] for h in engine.search(products, body)["hits"]["hits"]]


def test_rank_features(engine, products):
    body = {"query": sparse_query("sparse", {"耳机": 1.0, "hose": 0.1})}
    hits = engine.search(products, body)["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["b", "c"]
    assert hits[0]["_score"] == pytest.approx(3.0, rel=1e-3)


def test_bulk_is_idempotent(engine, products):
    engine.bulk_index(products, DOCS, refresh=True)
    assert engine.count(products) == 3
