"""The query service driven by the stock `elasticsearch` client, over the real engine and ONNX models."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from elasticsearch import ApiError, AuthenticationException, BadRequestError, NotFoundError

PRODUCTS = [
    {"id": "hp-en", "title": "Wireless noise-cancelling headphones", "description": "Bluetooth over-ear headphones.",
     "brand": "Nordvik", "category": "Audio", "price": 199.0},
    {"id": "hp-de", "title": "Kabellose Kopfhörer mit Geräuschunterdrückung", "description": "Bluetooth-Kopfhörer.",
     "brand": "Bergmann", "category": "Audio", "price": 179.0},
    {"id": "hp-zh", "title": "无线降噪耳机", "description": "头戴式蓝牙耳机，主动降噪。", "brand": "Tianlu",
     "category": "Audio", "price": 149.0},
    {"id": "hose-es", "title": "Manguera de jardín extensible", "description": "Manguera ligera de 30 metros.",
     "brand": "Soleado", "category": "Garden", "price": 29.0},
    {"id": "pan-fr", "title": "Poêle antiadhésive 28 cm", "description": "Poêle en aluminium, induction.",
     "brand": "Lumière", "category": "Kitchen", "price": 39.0},
    {"id": "chair-ja", "title": "エルゴノミクスオフィスチェア", "description": "ランバーサポート付きメッシュチェア。",
     "brand": "Hanami", "category": "Furniture", "price": 259.0},
]
KNN_TEXT = {"query_vector_builder": {"text_embedding": {"model_text": "kabellose Kopfhörer"}}}


@pytest.fixture(scope="module")
def catalog(es, index_name_module):
    actions = []
    for p in PRODUCTS:
        actions += [{"index": {"_index": index_name_module, "_id": p["id"]}}, p]
    resp = es.bulk(operations=actions, refresh="wait_for")
    assert not resp["errors"], resp
    return index_name_module


@pytest.fixture(scope="module")
def index_name_module():
    from tests.conftest import RUN

    return f"test-{RUN}-service"


def ids(resp):
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_info_and_product_header(es, service_url):
    assert es.info()["version"]["number"]
    assert httpx.get(service_url).headers["x-elastic-product"] == "Elasticsearch"


def test_bulk_through_queue_reports_created(es, catalog):
    assert es.count(index=catalog)["count"] == len(PRODUCTS)
    assert es.get(index=catalog, id="hp-de")["_source"] == PRODUCTS[1]  # as sent
    doc = es.get(index=catalog, id="hp-de", source_includes="lang,embedding,model")["_source"]  # derived, when named
    assert doc["lang"] == "de" and len(doc["embedding"]) == 384 and doc["model"]["dense"]


def test_long_description_is_found_by_its_best_chunk(es, engine, index_name):
    def listing(doc_id: str, thing: str, tail: str = "") -> dict:
        filler = f"This garden {thing} has a solid oak frame, a weatherproof oil finish and soft cushions. " * 20
        return {"id": doc_id, "title": f"Oak garden {thing}", "description": filler + tail, "lang": "en"}

    # only the further chunks of "long" mention the speaker; the first chunks of all three are alike
    docs = [listing("long", "chair", "The set also includes a waterproof Bluetooth speaker with twelve hours "
                                     "of battery life."), listing("table", "table"), listing("bench", "bench")]
    actions = [a for d in docs for a in ({"index": {"_index": index_name, "_id": d["id"]}}, d)]
    assert not es.bulk(operations=actions, refresh="wait_for")["errors"]
    # _source_includes=*: Elasticsearch 9 leaves vectors out of _source unless asked
    src = engine.request("GET", f"/{index_name}/_doc/long", params={"_source_includes": "*"})["_source"]
    assert src["embedding_chunks"] == 1 + len(src["chunks"]) >= 2 and src["embedding_truncated"] is False
    query = "wasserdichter Bluetooth-Lautsprecher"
    resp = es.search(index=index_name, retriever={"knn": {"field": "embedding", "k": 3, "num_candidates": 10,
                     "query_vector_builder": {"text_embedding": {"model_text": query}}}})
    assert ids(resp)[0] == "long"
    assert "chunks" not in resp["hits"]["hits"][0]["_source"]  # vectors stay out of answers
    # the first-chunk vector alone (title + start of the description) scores lower than the best chunk
    direct = engine.search(index_name, {"size": 3, "query": engine.dialect.knn_query(
        "embedding", _query_vector(query), 3, 3)})
    first_chunk_score = {h["_id"]: h["_score"] for h in direct["hits"]["hits"]}["long"]
    assert resp["hits"]["hits"][0]["_score"] > first_chunk_score + 0.01


def _query_vector(text: str) -> list[float]:
    from pipelines.ingest.tasks import worker_encoder

    return worker_encoder().encode_query(text)[0].tolist()


def test_standard_retriever(es, catalog):
    resp = es.search(index=catalog, retriever={"standard": {"query": {"match": {"title": "headphones"}}}})
    assert ids(resp)[0] == "hp-en"


def test_knn_retriever_query_vector_builder(es, catalog):
    resp = es.search(index=catalog, retriever={"knn": {"field": "embedding", "k": 3, "num_candidates": 10, **KNN_TEXT}})
    assert set(ids(resp)[:3]) == {"hp-en", "hp-de", "hp-zh"}


def test_knn_retriever_raw_vector(es, catalog):
    vec = es.get(index=catalog, id="pan-fr", source_includes="embedding")["_source"]["embedding"]
    resp = es.search(index=catalog, retriever={"knn": {"field": "embedding", "k": 1, "num_candidates": 10,
                                                       "query_vector": vec}})
    assert ids(resp) == ["pan-fr"]


def test_cross_lingual_knn(es, catalog):
    resp = es.search(index=catalog, retriever={"knn": {
        "field": "embedding", "k": 2, "num_candidates": 10, "filter": {"bool": {"must_not": {"term": {"lang": "es"}}}},
        "query_vector_builder": {"text_embedding": {"model_text": "silla ergonómica de oficina"}}}})
    assert ids(resp)[0] == "chair-ja"


def test_rrf_and_filters_apply_to_every_retriever(es, catalog):
    retriever = {"rrf": {"retrievers": [
        {"standard": {"query": {"match": {"title": "Kopfhörer headphones"}}}},
        {"knn": {"field": "embedding", "k": 5, "num_candidates": 10, **KNN_TEXT}}],
        "rank_window_size": 10, "rank_constant": 20}}
    resp = es.search(index=catalog, retriever=retriever, size=6)
    assert ids(resp)[0] in ("hp-de", "hp-en")
    assert resp["hits"]["hits"][0]["_score"] == pytest.approx(2 / 21, rel=0.05)
    filtered = es.search(index=catalog, post_filter={"range": {"price": {"lte": 160}}}, retriever=retriever, size=6)
    assert set(ids(filtered)) <= {"hp-zh", "hose-es", "pan-fr"} and "hp-zh" in ids(filtered)


@pytest.mark.parametrize("normalizer", ["none", "minmax", "l2_norm", "zscore"])
def test_linear_retriever(es, catalog, normalizer):
    resp = es.search(index=catalog, retriever={"linear": {"retrievers": [
        {"retriever": {"standard": {"query": {"match": {"title": "Manguera"}}}}, "weight": 2.0,
         "normalizer": normalizer},
        {"retriever": {"knn": {"field": "embedding", "k": 5, "num_candidates": 10, "query_vector_builder": {
            "text_embedding": {"model_text": "garden hose"}}}}, "weight": 1.0, "normalizer": normalizer}]}})
    assert ids(resp)[0] == "hose-es"


def test_sparse_vector_with_explicit_weights(es, catalog, engine):
    # the e5 export has no sparse head unless one was trained; explicit weights always work
    doc = engine.request("GET", f"/{catalog}/_doc/pan-fr", params={"_source_includes": "*"})["_source"]  # ES 9: asked
    if not doc.get("sparse"):
        pytest.skip("model exported without a sparse head (run `polyseek models train-sparse`)")
    term = max(doc["sparse"], key=doc["sparse"].get)
    resp = es.search(index=catalog, retriever={"standard": {"query": {"sparse_vector": {
        "field": "sparse", "query_vector": {term: 1.0}}}}})
    assert ids(resp)[0] == "pan-fr"


def test_hybrid_shorthand_paging_source_highlight_aggs(es, catalog):
    body = dict(query={"hybrid": {"query": "wireless headphones"}}, size=2, source=["title"],
                highlight={"fields": {"title": {}}}, aggs={"cats": {"terms": {"field": "category.raw"}}})
    first = es.search(index=catalog, **body)
    second = es.search(index=catalog, from_=2, **body)
    assert first["hits"]["hits"][0]["_id"] == "hp-en"
    assert set(first["hits"]["hits"][0]["_source"]) == {"title"}
    assert "<em>" in first["hits"]["hits"][0]["highlight"]["title"][0]
    assert not set(ids(first)) & set(ids(second))
    buckets = {b["key"] for b in first["aggregations"]["cats"]["buckets"]}
    assert "Audio" in buckets


def test_explain_breakdown(es, catalog, settings):
    resp = es.search(index=catalog, query={"hybrid": {"query": "无线降噪耳机", "weights": {"sparse": 0}}},
                     explain=True, size=1)
    stages = [d["description"].split(":")[0] for d in resp["hits"]["hits"][0]["_explanation"]["details"]]
    assert "bm25" in stages and "knn" in stages and settings.hybrid_fusion in stages and "sparse" not in stages
    resp = es.search(index=catalog, query={"hybrid": {"query": "无线降噪耳机", "fusion": "rrf"}}, explain=True, size=1)
    assert "rrf" in [d["description"].split(":")[0] for d in resp["hits"]["hits"][0]["_explanation"]["details"]]


def test_msearch(es, catalog):
    resp = es.msearch(searches=[{"index": catalog}, {"query": {"hybrid": {"query": "Poêle"}}},
                                {"index": catalog}, {"query": {"match": {"title": "Manguera"}}}])
    assert ids(resp["responses"][0])[0] == "pan-fr"
    assert ids(resp["responses"][1]) == ["hose-es"]


def test_passthrough(es, catalog):
    assert es.count(index=catalog, query={"match": {"category": "Audio"}})["count"] == 3
    assert "embedding" in es.indices.get_mapping(index=catalog)[catalog]["mappings"]["properties"]
    assert any(row["index"] == catalog for row in es.cat.indices(format="json"))


def test_errors(es, catalog, service_url):
    with pytest.raises(BadRequestError) as exc:
        es.search(index=catalog, retriever={"fancy": {}})
    assert exc.value.error == "x_content_parse_exception"
    with pytest.raises(NotFoundError):
        es.search(index="no-such-index-xyz", query={"hybrid": {"query": "x"}})
    with pytest.raises(NotFoundError) as exc:
        es.search(index=catalog, retriever={"knn": {"field": "embedding", "k": 1, "num_candidates": 5,
                                                    "query_vector_builder": {"text_embedding": {
                                                        "model_id": "no-such-model", "model_text": "x"}}}})
    assert "no-such-model" in str(exc.value)
    resp = httpx.post(f"{service_url}/{catalog}/_search", content=b"{not json",
                      headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "parsing_exception"
    with pytest.raises(ApiError) as exc:
        es.search(index=catalog, retriever={"text_similarity_reranker": {
            "retriever": {"standard": {"query": {"match_all": {}}}}, "field": "title", "inference_text": "x",
            "inference_id": "no-such-reranker"}})
    assert exc.value.meta.status == 404


def test_scripts_and_admin_refused(es, catalog):
    with pytest.raises(ApiError) as exc:
        es.search(index=catalog, query={"script_score": {"query": {"match_all": {}},
                                                          "script": {"source": "1"}}})
    assert exc.value.meta.status == 403
    with pytest.raises(ApiError) as exc:
        es.indices.delete(index=catalog)
    assert exc.value.meta.status == 403


def test_bad_document_via_doc_endpoint(es, catalog):
    with pytest.raises(BadRequestError) as exc:
        es.index(index=catalog, id="bad-1", document={"title": {"not": "a string"}}, refresh="wait_for")
    assert "title" in str(exc.value)
    ok = es.index(index=catalog, id="good-1", document={"title": "Extra product"}, refresh="wait_for")
    assert ok["result"] == "created"
    es.delete(index=catalog, id="good-1", refresh=True)


def test_query_log_written(es, catalog, engine, settings):
    es.search(index=catalog, query={"hybrid": {"query": "query-log-probe"}})
    for _ in range(50):
        time.sleep(0.2)
        engine.refresh(settings.query_log_index)
        hits = engine.search(settings.query_log_index, {"query": {"match": {"query": "query-log-probe"}}})
        if hits["hits"]["hits"]:
            rec = hits["hits"]["hits"][0]["_source"]
            assert rec["index"] == catalog and rec["retriever"] == settings.hybrid_fusion
            assert {s["stage"] for s in rec["stages"]} >= {"bm25", "knn", settings.hybrid_fusion, "fetch"}
            return
    pytest.fail("no query-log record")


def test_api_key_auth(settings, catalog):
    from elasticsearch import Elasticsearch

    from bench.runner import serve_in_thread as serve

    url, stop = serve(settings.model_copy(update={"api_keys": ["s3cret"]}))
    try:
        with pytest.raises(AuthenticationException):
            Elasticsearch(url).count(index=catalog)
        assert Elasticsearch(url, api_key="s3cret").count(index=catalog)["count"] >= len(PRODUCTS)
        health = httpx.get(f"{url}/_polyseek/health")  # no key: container healthchecks and load balancers
        assert health.status_code == 200
        assert health.json()["status"] == "up"
        assert health.json()["engine"]["reachable"] is True
        assert health.json()["engine"]["cluster_status"] in ("green", "yellow")
    finally:
        stop()


def test_index_allow_list(settings, catalog):
    from elasticsearch import Elasticsearch

    from bench.runner import serve_in_thread as serve

    url, stop = serve(settings.model_copy(update={"index_allow_list": ["allowed-*"]}))
    try:
        with pytest.raises(ApiError) as exc:
            Elasticsearch(url).count(index=catalog)
        assert exc.value.meta.status == 403
    finally:
        stop()


@pytest.fixture(scope="module")
def tiny_reranker(settings, tmp_path_factory):
    """A random tiny cross-encoder in the model cache, exported and quantized like the real one."""
    import shutil

    from pipelines.models.card import model_paths
    from pipelines.models.export import export_onnx, quantize_int8
    from pipelines.models.importer import import_model
    from tests.conftest import RUN, build_tiny_bert

    hf = build_tiny_bert(tmp_path_factory.mktemp("tiny-ce"), cross_encoder=True)
    paths = model_paths(settings.resolved_model_dir, f"test-reranker-{RUN}")
    import_model(str(hf), paths, kind="cross-encoder")
    export_onnx(paths)
    quantize_int8(paths)
    yield paths
    shutil.rmtree(paths.root)


def test_text_similarity_reranker_orders_by_cross_encoder(es, catalog, tiny_reranker, settings):
    from pipelines.encoders.cross import CrossEncoder

    retriever = {"text_similarity_reranker": {
        "retriever": {"standard": {"query": {"match_all": {}}}}, "field": "title",
        "inference_text": "wireless headphones", "inference_id": tiny_reranker.root.name, "rank_window_size": 6}}
    resp = es.search(index=catalog, retriever=retriever, size=6, source=["title", "category", "description"])
    hits = resp["hits"]["hits"]
    texts = [" . ".join(h["_source"][f] for f in ("title", "category", "description")) for h in hits]
    expected = CrossEncoder(tiny_reranker, "int8").score("wireless headphones", texts)
    assert [h["_score"] for h in hits] == pytest.approx(sorted(expected.tolist(), reverse=True), rel=1e-4)
    assert [h["_score"] for h in hits] == sorted([h["_score"] for h in hits], reverse=True)


def test_engine_down_gives_503_and_opens_the_circuit(settings):
    """A service whose engine does not answer (nothing listens on the port) answers 503 in ES format."""
    from bench.runner import free_port, serve_in_thread

    url, stop = serve_in_thread(settings.model_copy(update={"engine_url": f"http://127.0.0.1:{free_port()}"}))
    try:
        statuses = []
        for _ in range(6):
            resp = httpx.post(f"{url}/products/_search", json={"query": {"match_all": {}}})
            statuses.append((resp.status_code, resp.json()["error"]["type"]))
        assert statuses[0] == (503, "unavailable_engine_exception")
        assert statuses[-1] == (503, "circuit_breaking_exception")
        health = httpx.get(f"{url}/_polyseek/health")  # the service itself is up
        assert (health.status_code, health.json()["engine"]) == (200, {"reachable": False, "cluster_status": None})
    finally:
        stop()


def test_request_too_large(settings):
    from bench.runner import serve_in_thread

    url, stop = serve_in_thread(settings.model_copy(update={"max_request_bytes": 1000}))
    try:
        resp = httpx.post(f"{url}/products/_search", content=b"{" + b" " * 2000 + b"}",
                          headers={"content-type": "application/json"})
        assert resp.status_code == 413 and resp.json()["error"]["type"] == "content_too_long_exception"
    finally:
        stop()


def test_errors_answer_in_elasticsearch_shape_with_the_product_header(settings):
    """The exception handlers: a refusal (401, with its WWW-Authenticate), a method no route takes (405, worded
    as Elasticsearch words it) and an unexpected error (500) answer in Elasticsearch's shape, each with the
    product header the stock clients check."""
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from service.app import create_app

    async def boom(request):
        raise RuntimeError("boom")

    app = create_app(settings.model_copy(update={"api_keys": ["s3cret"]}))
    app.router.routes.insert(0, Route("/_boom", boom))
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: nothing here reaches the engine
    key = {"Authorization": "ApiKey s3cret"}
    answers = {"401": client.get("/products/_search"), "405": client.options("/products/_search", headers=key),
               "500": client.get("/_boom", headers=key)}
    assert all(r.headers["x-elastic-product"] == "Elasticsearch" for r in answers.values())
    assert answers["401"].status_code == 401 and answers["401"].headers["www-authenticate"] == "ApiKey"
    assert answers["401"].json()["error"]["root_cause"][0]["type"] == "security_exception"
    assert answers["405"].status_code == 405 and answers["405"].json()["status"] == 405
    assert answers["405"].json()["error"].startswith(
        "Incorrect HTTP method for uri [/products/_search] and method [OPTIONS], allowed: [")
    assert "POST" in answers["405"].headers["allow"]
    assert answers["500"].status_code == 500
    assert answers["500"].json()["error"] == {"root_cause": [{"type": "exception", "reason": "RuntimeError: boom"}],
                                              "type": "exception", "reason": "RuntimeError: boom"}


def test_feedback_against_a_search_becomes_a_training_pair(es, catalog, service_url, engine, settings):
    from pipelines.models.feedback_pairs import query_log_pairs

    resp = es.options(opaque_id="shopper-42").search(index=catalog, query={"hybrid": {"query": "kabellose Kopfhörer"}})
    search_id = resp.meta.headers["x-polyseek-search-id"]
    assert len(search_id) == 32 and resp["hits"]["hits"]
    clicked = resp["hits"]["hits"][0]["_id"]
    answer = httpx.post(f"{service_url}/_polyseek/feedback?refresh=true",
                        json={"search_id": search_id, "doc_id": clicked, "position": 1})
    assert answer.status_code == 201, answer.text
    by_opaque = httpx.post(f"{service_url}/_polyseek/feedback?refresh=true",
                           json={"events": [{"opaque_id": "shopper-42", "doc_id": "hp-en", "event": "order"}]})
    assert by_opaque.status_code == 201 and by_opaque.json()["recorded"] == 1
    pairs = {(p.query, p.group) for p in query_log_pairs(engine, settings)}
    assert ("kabellose Kopfhörer", f"{catalog}/{clicked}") in pairs and ("kabellose Kopfhörer", f"{catalog}/hp-en") in pairs


def test_feedback_records_the_language_pair(es, catalog, service_url, engine, settings):
    """Each event carries the clicked document's language (``und`` when it is not in the index) and the
    query->document language pair, a keyword the Kibana charts split on."""
    resp = es.search(index=catalog, query={"hybrid": {"query": "kabellose Kopfhörer mit Geräuschunterdrückung"}})
    search_id = resp.meta.headers["x-polyseek-search-id"]
    events = [{"search_id": search_id, "doc_id": "hp-en"},
              {"search_id": search_id, "doc_id": "hp-de", "event": "order"},
              {"search_id": search_id, "doc_id": "no-such-product"},
              {"search_id": search_id, "doc_id": "hp-zh", "index": f"{catalog}-gone"}]  # an index not there
    answer = httpx.post(f"{service_url}/_polyseek/feedback?refresh=true", json={"events": events})
    assert answer.status_code == 201 and answer.json()["recorded"] == 4, answer.text
    by_search = {"term": {"search_id": search_id}}
    stored = engine.search(settings.feedback_index, {"query": by_search, "size": 10})["hits"]["hits"]
    assert {h["_source"]["doc_id"]: (h["_source"]["doc_lang"], h["_source"]["lang_pair"]) for h in stored} == {
        "hp-en": ("en", "de->en"), "hp-de": ("de", "de->de"), "no-such-product": ("und", "de->und"),
        "hp-zh": ("und", "de->und")}
    pairs = engine.search(settings.feedback_index, {"query": by_search, "size": 0, "aggs": {
        "pair": {"terms": {"field": "lang_pair"}}}})["aggregations"]["pair"]["buckets"]
    assert {b["key"]: b["doc_count"] for b in pairs} == {"de->en": 1, "de->de": 1, "de->und": 2}


@pytest.mark.parametrize("body, status", [
    ({"doc_id": "x"}, 400),                                    # no search key
    ({"search_id": "a", "doc_id": "x", "event": "like"}, 400),  # unknown event
    ({"search_id": "a", "doc_id": "x", "bogus": 1}, 400),       # unknown field
    ([1, 2], 400),
    ({"search_id": "no-such-search", "doc_id": "x"}, 404),
])
def test_feedback_bad_input_is_a_4xx_in_elasticsearch_shape(service_url, body, status):
    answer = httpx.post(f"{service_url}/_polyseek/feedback", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["root_cause"][0]["type"] == error["type"] and error["reason"]


def test_a_search_that_embeds_nothing_needs_no_model(es, engine):
    """An index whose model is not on disk answers BM25 (retriever, shorthand with only BM25, plain
    query) as the engine does; only what must embed the query reports the missing model."""
    from tests.conftest import RUN

    index = f"nomodel-{RUN}"
    assert engine.create_products_index(index, dims=4, model="no-such-model-on-disk") is True
    try:
        doc = {"title": "Garden hose 30 m", "title_en": "Garden hose 30 m", "lang": "en",
               "embedding": [0.0, 0.0, 1.0, 0.0]}
        assert all(r.ok for r in engine.bulk_index(index, [("h1", doc)], refresh=True))
        for kw in ({"retriever": {"standard": {"query": {"match": {"title": "hose"}}}}},
                   {"query": {"hybrid": {"query": "hose", "weights": {"knn": 0, "exact": 0}}}},
                   {"query": {"match": {"title": "hose"}}}):
            assert ids(es.search(index=index, **kw)) == ["h1"], kw
        with pytest.raises(NotFoundError) as exc:
            es.search(index=index, query={"hybrid": {"query": "hose"}})
        assert "no-such-model-on-disk" in str(exc.value)
    finally:
        engine.delete_index(index)


def test_the_shoppers_language_comes_first_only_when_the_catalog_has_the_product_in_it(es, engine):
    """The hybrid default's lexical anchor: a query that is a German listing's whole title shows the
    German listings (the product and a related one) before other languages' versions of the product;
    a German query whose product exists only in English still gets the English product above a
    German listing that merely shares a word (no same-language wrong product first)."""
    from tests.conftest import RUN

    index = f"test-{RUN}-language"
    docs = [
        {"id": "hp-de", "title": "Kopfhörer", "category": "Elektronik > Audio > Kopfhörer"},
        {"id": "hp-en", "title": "Headphones", "category": "Electronics > Audio > Headphones"},
        {"id": "hp-ja", "title": "ヘッドホン", "category": "電子機器 > オーディオ > ヘッドホン"},
        {"id": "stand-de", "title": "Kopfhörerständer aus Holz", "category": "Elektronik > Audio > Kopfhörer"},
        {"id": "stand-en", "title": "Wooden headphone stand", "category": "Electronics > Audio > Headphones"},
        {"id": "bt-en", "title": "Wireless noise-cancelling earbuds", "category": "Electronics > Audio"},
        {"id": "kb-de", "title": "Kabellose Tastatur mit Nummernblock", "category": "Computer > Tastaturen"},
    ]
    actions = [line for d in docs for line in ({"index": {"_index": index, "_id": d["id"]}}, d)]
    assert not es.bulk(operations=actions, refresh="wait_for")["errors"]
    try:
        german = ids(es.search(index=index, query={"hybrid": {"query": "Kopfhörer"}}, size=5))
        assert german[:2] == ["hp-de", "stand-de"], german
        assert german.index("hp-en") > german.index("stand-de")
        flat = ids(es.search(index=index, query={"hybrid": {"query": "Kopfhörer", "weights": {"language": 0}}},
                             size=5))
        assert flat[0] == "hp-de" and flat.index("stand-de") > min(flat.index("hp-en"), flat.index("hp-ja")), flat
        query = "kabellose Ohrhörer mit Geräuschunterdrückung"
        words = ids(es.search(index=index, query={"hybrid": {"query": query, "weights": {"knn": 0, "exact": 0}}}))
        assert words[0] == "kb-de"  # the premise: BM25 alone puts the German keyboard first
        xling = ids(es.search(index=index, query={"hybrid": {"query": query}}, size=5))
        assert xling[0] == "bt-en" and "kb-de" not in xling[:2], xling
    finally:
        engine.delete_index(index)
