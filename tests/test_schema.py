"""pipelines.schema: the products templates name what the schema names, and a catalog whose product
fields are called otherwise (settings.product_fields) is validated, embedded, mapped and searched
under its own names, end to end on the real engine."""

from __future__ import annotations

import json
import os

import httpx
import numpy as np
import pytest

from pipelines.engine.dialect import dialect_for, load_template
from pipelines.engine.templates import templates_for
from pipelines.schema import (
    ANALYZED_LANGUAGES,
    CHUNK_COUNT_FIELD,
    CHUNK_NUMBER,
    CHUNK_VECTOR,
    CHUNKS_FIELD,
    CODE_FIELD,
    DEFAULT_PRODUCT_FIELDS,
    ID_FIELD,
    INGESTED_AT_FIELD,
    LANG_FIELD,
    MODEL_FIELD,
    SOURCE_NAMESPACE,
    SPARSE_FIELD,
    TRUNCATED_FIELD,
    VECTOR_FIELD,
    ProductFields,
    embedding_text,
    prefix_field,
    rerank_text,
)
from pipelines.settings import Settings, get_settings

DIALECTS = ("opensearch", "elasticsearch")
RENAMED = {"title": "name", "description": "body", "brand": "maker", "category": "taxonomy", "price": "cost"}


# --- the templates and the schema ------------------------------------------------------------------

def test_products_templates_name_the_schemas_fields():
    text = load_template("component/products-text.json")
    props = text["template"]["mappings"]["properties"]
    pf = DEFAULT_PRODUCT_FIELDS
    assert set(text["_meta"]["languages"]) == ANALYZED_LANGUAGES
    assert {*pf.text_fields, ID_FIELD, LANG_FIELD, SOURCE_NAMESPACE, MODEL_FIELD, INGESTED_AT_FIELD,
            TRUNCATED_FIELD, CHUNK_COUNT_FIELD, CODE_FIELD, prefix_field(1)} <= set(props)
    assert {pf.per_language(f, lang) for f in pf.per_language_fields for lang in ANALYZED_LANGUAGES} <= set(props)
    title, sub = pf.exact_field.split(".")
    assert props[title]["fields"][sub]["type"] == "keyword"
    assert props[pf.brand]["fields"]["text"]["type"] == "text"  # brand.text: a BM25 field of the shorthand
    assert {n for n in props if n not in pf.derived_roots} <= {*pf.text_fields, "currency", "image_url"}
    for dialect in DIALECTS:
        vectors = load_template(f"{dialect}/products-vectors.json")["template"]["mappings"]["properties"]
        assert {VECTOR_FIELD, CHUNKS_FIELD, SPARSE_FIELD, pf.price} <= set(vectors)
        assert set(vectors[CHUNKS_FIELD]["properties"]) == {CHUNK_VECTOR, CHUNK_NUMBER}


def test_settings_defaults_follow_the_product_fields():
    default = Settings()
    assert default.product_fields == DEFAULT_PRODUCT_FIELDS
    assert default.hybrid_fields == ["title^3", "title_*^3", "brand.text^2", "category^2", "description",
                                     "description_*"]
    assert (default.hybrid_exact_field, default.rerank_field) == ("title.exact", "title")
    renamed = Settings(product_fields=RENAMED)
    assert renamed.hybrid_fields == ["name^3", "name_*^3", "maker.text^2", "taxonomy^2", "body", "body_*"]
    assert (renamed.hybrid_exact_field, renamed.rerank_field) == ("name.exact", "name")
    assert Settings(product_fields=RENAMED, hybrid_exact_field=None).hybrid_exact_field is None


@pytest.mark.parametrize("fields", [{"title": "embedding"}, {"title": "body", "description": "body"},
                                    {"description": "a.b"}, {"brand": ""}, {"colour": "x"}])
def test_product_fields_that_would_clash_are_refused(fields):
    with pytest.raises(ValueError):
        ProductFields(**fields)


def test_products_mapping_under_other_names():
    pf = ProductFields(**RENAMED)
    for dialect in DIALECTS:
        props = dialect_for(dialect).product_index_body(8, "m", pf)["mappings"]["properties"]
        default = dialect_for(dialect).product_index_body(8, "m")["mappings"]["properties"]
        for role, name in RENAMED.items():
            assert name in props and role not in props and props[name] == default[role]
        assert props["body_de"] == default["description_de"] and "description_de" not in props
        assert props["name"]["fields"]["exact"]["normalizer"] == "polyseek_exact"
        by_name = {t.name: t.body for t in templates_for(dialect, pf)}
        renamed = by_name["polyseek-products-text"]["template"]["mappings"]["properties"]
        assert "body_fr" in renamed and "description" not in renamed
        assert "cost" in by_name["polyseek-products-vectors"]["template"]["mappings"]["properties"]


def test_texts_read_the_catalogs_names():
    pf = ProductFields(**RENAMED)
    doc = {"name": "Oak chair", "maker": "Nordvik", "taxonomy": "Furniture > Chairs", "body": "Solid oak.",
           "title": "ignored", "description": "ignored"}
    assert embedding_text(doc, pf) == "Oak chair \nNordvik \nFurniture > Chairs \nSolid oak."
    assert rerank_text(doc, fields=pf) == "Oak chair . Furniture > Chairs . Solid oak."


# --- a catalog with other field names, end to end ---------------------------------------------------

CATALOG = [
    {"id": "chair", "name": "Ergonomischer Bürostuhl", "body": "Netzrücken, verstellbare Lordosenstütze und "
     "Armlehnen für lange Arbeitstage.", "maker": "Nordvik", "taxonomy": "Furniture > Office > Chairs", "cost": 249.0},
    {"id": "hose", "name": "Tuyau d'arrosage extensible", "body": "Tuyau de jardin léger de trente mètres avec "
     "pistolet.", "maker": "Soleado", "taxonomy": "Garden > Watering", "cost": 39.5},
    {"id": "headphones", "name": "Wireless noise-cancelling headphones", "body": "Over-ear Bluetooth headphones "
     "with a thirty-hour battery and a zanzibar carrying pouch.", "maker": "Kaiyo",
     "taxonomy": "Electronics > Audio > Headphones", "cost": 129.0},
]


@pytest.fixture(scope="module")
def renamed(engine):
    """The process's settings with the catalog's field names (as POLYSEEK_PRODUCT_FIELDS sets them: workers
    and the synchronous writes read get_settings()) and a query service on them."""
    from bench.runner import serve_in_thread

    os.environ["POLYSEEK_PRODUCT_FIELDS"] = json.dumps(RENAMED)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.product_fields == ProductFields(**RENAMED)
        url, stop = serve_in_thread(settings)
        try:
            yield settings, url
        finally:
            stop()
    finally:
        del os.environ["POLYSEEK_PRODUCT_FIELDS"]
        get_settings.cache_clear()


def _stored(settings: Settings, index: str, doc_id: str) -> dict:
    from pipelines.engine.client import EngineClient

    with EngineClient(settings) as client:  # _source_includes=*: Elasticsearch 9 leaves vectors out otherwise
        return client.request("GET", f"/{index}/_doc/{doc_id}", params={"_source_includes": "*"})["_source"]


def _ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [h["_id"] for h in resp.json()["hits"]["hits"]]


@pytest.fixture(scope="module")
def catalog(renamed, engine):
    from tests.conftest import RUN

    settings, url = renamed
    index = f"test-{RUN}-renamed-catalog"
    lines = [json.dumps(x) for d in CATALOG for x in ({"index": {"_index": index, "_id": d["id"]}}, d)]
    resp = httpx.post(f"{url}/_bulk", params={"refresh": "true"}, content="\n".join(lines) + "\n",
                      headers={"content-type": "application/x-ndjson"}, timeout=120)
    assert resp.status_code == 200 and not resp.json()["errors"], resp.text
    return index


def test_renamed_fields_are_mapped_copied_and_embedded(renamed, catalog, encoder):
    settings, url = renamed
    props = httpx.get(f"{settings.engine_url}/{catalog}/_mapping").json()[catalog]["mappings"]["properties"]
    assert props["body_de"]["analyzer"] == "german" and props["name_fr"]["analyzer"] == "french"
    assert props["name"]["fields"]["exact"]["type"] == "keyword" and props["maker"]["type"] == "keyword"
    assert props["cost"]["type"] in ("scaled_float", "double")
    assert not {"title", "description", "brand", "category", "price"} & set(props)
    src = _stored(settings, catalog, "chair")
    assert src["lang"] == "de" and src["body_de"] == CATALOG[0]["body"] and src["name_de"] == CATALOG[0]["name"]
    # the vector embeds name, maker, taxonomy and body, as the default catalog's title, brand, category, description
    text = embedding_text(CATALOG[0], ProductFields(**RENAMED))
    assert CATALOG[0]["body"] in text
    want = encoder.encode_documents([text], chunk_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap,
                                    max_chunks=settings.max_chunks).dense[0]
    assert np.dot(np.asarray(src["embedding"]), want) > 0.99
    # the client's document reads back as sent
    assert httpx.get(f"{url}/{catalog}/_doc/hose").json()["_source"] == CATALOG[1]


def test_renamed_fields_are_validated(renamed, catalog):
    _, url = renamed
    for doc, field in (({"name": ["not", "a", "string"]}, "name"), ({"name": "x", "cost": "cheap"}, "cost")):
        resp = httpx.put(f"{url}/{catalog}/_doc/bad", json=doc)
        assert resp.status_code == 400 and f"'{field}'" in resp.json()["error"]["reason"], resp.text


def test_hybrid_shorthand_searches_the_renamed_fields(renamed, catalog):
    _, url = renamed
    search = f"{url}/{catalog}/_search"
    # a word only in one body: BM25 over body and body_* (the shorthand's default fields) finds it alone
    bm25_only = {"query": {"hybrid": {"query": "zanzibar", "weights": {"bm25": 1.0, "knn": 0.0, "exact": 0.0}}}}
    assert _ids(httpx.post(search, json=bm25_only)) == ["headphones"]
    # the German stemmer on body_de: "Arbeitstag" matches "Arbeitstage"
    stemmed = {"query": {"hybrid": {"query": "Arbeitstag", "weights": {"bm25": 1.0, "knn": 0.0, "exact": 0.0}}}}
    assert _ids(httpx.post(search, json=stemmed)) == ["chair"]
    # the exact-title leaf reads name.exact
    exact = {"query": {"hybrid": {"query": "tuyau D'ARROSAGE extensible", "weights": {"bm25": 0.0, "knn": 0.0,
                                                                                      "exact": 1.0}}}}
    assert _ids(httpx.post(search, json=exact)) == ["hose"]
    # the default hybrid: cross-lingual, and the answer is the document as sent
    resp = httpx.post(search, json={"query": {"hybrid": {"query": "office chair"}}, "size": 1})
    assert _ids(resp) == ["chair"] and resp.json()["hits"]["hits"][0]["_source"] == CATALOG[0]


def test_reranker_reads_the_renamed_fields(renamed, catalog):
    from pipelines.encoders.cross import open_cross_encoder

    settings, url = renamed
    query = "headphones for travel"
    retriever = {"text_similarity_reranker": {"retriever": {"standard": {"query": {"match_all": {}}}},
                                              "field": "name", "inference_text": query,
                                              "inference_id": "polyseek-reranker", "rank_window_size": 3}}
    hits = httpx.post(f"{url}/{catalog}/_search", json={"retriever": retriever}, timeout=120).json()["hits"]["hits"]
    cross = open_cross_encoder(settings.resolved_model_dir, "polyseek-reranker", settings.encoder_precision)
    passages = [" . ".join(h["_source"][f] for f in ("name", "taxonomy", "body")) for h in hits]
    assert [h["_score"] for h in hits] == pytest.approx(cross.score(query, passages).tolist(), rel=1e-4)


def test_worker_batches_use_the_renamed_fields(renamed, engine, encoder):
    """The ingest worker's batch (what a queued write runs) under the catalog's names."""
    from pipelines.engine.client import EngineClient
    from pipelines.ingest.tasks import process_batch
    from tests.conftest import RUN

    settings, url = renamed
    index = f"test-{RUN}-renamed-worker"
    docs = [{**d, "id": f"w-{d['id']}"} for d in CATALOG] + [{"id": "w-bad", "name": 7}]
    with EngineClient(settings) as client:
        result = process_batch(index, docs, encoder=encoder, engine=client)
    assert result["indexed"] == 3 and [e["id"] for e in result["errors"]] == ["w-bad"]
    src = _stored(settings, index, "w-hose")
    assert src["lang"] == "fr" and src["body_fr"] == CATALOG[1]["body"]
    httpx.post(f"{settings.engine_url}/{index}/_refresh")
    stemmed = {"query": {"hybrid": {"query": "Arbeitstag", "weights": {"bm25": 1.0, "knn": 0.0, "exact": 0.0}}}}
    assert _ids(httpx.post(f"{url}/{index}/_search", json=stemmed)) == ["w-chair"]
