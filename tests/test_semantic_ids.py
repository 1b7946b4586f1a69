"""Semantic IDs: the residual quantiser (a pure unit), codes written by the worker, refit through the
reindex path, collapse through the service, near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.models.semantic_ids import ResidualQuantizer, fit, kmeans, pair_quality
from pipelines.schema import CODE_FIELD, prefix_field


def _clusters(n_groups: int = 12, per_group: int = 6, dims: int = 16, noise: float = 0.05, seed: int = 1):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dims))
    x = np.repeat(centres, per_group, axis=0) + noise * rng.normal(size=(n_groups * per_group, dims))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(n_groups), per_group)


def test_kmeans_finds_separated_clusters_and_is_deterministic():
    x, labels = _clusters()
    c1, a1 = kmeans(x, 12, seed=3)
    c2, a2 = kmeans(x, 12, seed=3)
    assert np.array_equal(a1, a2) and np.allclose(c1, c2)
    # every true cluster maps to exactly one k-means cluster and vice versa
    pairs = {(int(t), int(a)) for t, a in zip(labels, a1)}
    assert len(pairs) == 12 and len({a for _, a in pairs}) == 12


def test_residual_levels_reduce_the_error_and_codes_round_trip():
    x, _ = _clusters(n_groups=20, per_group=10, noise=0.3)
    q = fit(x, levels=3, codes=16, seed=0)
    assert q.levels == 3 and q.sizes == [16, 16, 16] and q.dims == 16
    mse = q.info["mse_per_level"]
    assert mse[0] > mse[1] > mse[2]
    codes = q.encode(x)
    assert codes.shape == (200, 3) and codes.min() >= 0 and codes.max() < 16
    err = ((x - q.decode(codes)) ** 2).sum(1).mean()
    assert err == pytest.approx(mse[2], rel=0.05)  # encoding the training data gives the fitted error
    again = ResidualQuantizer.from_bytes(q.to_bytes())
    assert again.id == q.id and np.array_equal(again.encode(x), codes) and again.info == q.info


def test_fields_are_padded_prefixes():
    x, labels = _clusters()
    q = fit(x, levels=3, codes=256, seed=0, min_points_per_code=4)
    assert q.sizes == [18, 18, 18]  # a small catalog: at least 4 points per code
    doc = q.fields(x[:1])[0]
    parts = doc[CODE_FIELD].split("-")
    assert len(parts) == 3 and all(len(p) == 2 for p in parts)
    assert doc[prefix_field(1)] == parts[0] and doc[prefix_field(2)] == "-".join(parts[:2])
    assert set(doc) == {CODE_FIELD, prefix_field(1), prefix_field(2)}
    # with as many codes as clusters, the first level is the clustering: one code per true cluster
    first = [f[prefix_field(1)] for f in fit(x, levels=2, codes=12).fields(x)]
    assert all(len({first[i] for i in np.flatnonzero(labels == g)}) == 1 for g in range(12))


def test_language_centring_groups_translations_that_a_language_offset_separates():
    # two "languages": the same 12 products, each language shifted by its own offset
    x, labels = _clusters(noise=0.02)
    rng = np.random.default_rng(5)
    offsets = {"de": 0.8 * rng.normal(size=16), "fr": 0.8 * rng.normal(size=16)}
    vecs = np.concatenate([x + offsets["de"], x + offsets["fr"]]).astype(np.float32)
    langs = ["de"] * len(x) + ["fr"] * len(x)
    both = np.concatenate([labels, labels])

    def products_split(q, langs_):
        first = q.encode(vecs, langs_)[:, 0]
        return sum(len(set(first[both == g])) > 1 for g in range(12))

    plain = fit(vecs, levels=1, codes=12)
    centred = fit(vecs, langs, levels=1, codes=12)
    assert products_split(plain, None) > 0  # the language offset decides the code
    assert products_split(centred, langs) == 0  # centred per language: one code per product
    assert set(centred.centres) == {"*", "de", "fr"} and centred.info["languages"] == ["de", "fr"]
    again = ResidualQuantizer.from_bytes(centred.to_bytes())
    assert again.id == centred.id != plain.id and np.array_equal(again.encode(vecs, langs), centred.encode(vecs, langs))
    # a language the fit did not see is centred on the mean of all vectors
    assert centred.encode(vecs[:3], ["xx", None, "de"]).shape == (3, 1)
    with pytest.raises(ValueError):
        centred.encode(vecs[:3], ["de"])


def test_pair_quality_counts_pairs_per_level():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(40, 2))
    groups = [int(g) if g < 7 else None for g in rng.integers(0, 8, size=40)]
    got = pair_quality(codes, groups)
    keep = [i for i, g in enumerate(groups) if g is not None]
    for level, row in enumerate(got, 1):  # the same by enumerating every pair
        pairs = [(i, j) for a, i in enumerate(keep) for j in keep[a + 1:]]
        called = [(i, j) for i, j in pairs if tuple(codes[i][:level]) == tuple(codes[j][:level])]
        same = [(i, j) for i, j in pairs if groups[i] == groups[j]]
        hit = [p for p in called if p in set(same)]
        assert row == {"level": level, "precision": round(len(hit) / len(called), 3),
                       "recall": round(len(hit) / len(same), 3), "pairs": len(called)}


@pytest.mark.parametrize("kwargs", [{"levels": 0}, {"levels": 9}, {"codes": 1}])
def test_fit_refuses_bad_shapes(kwargs):
    with pytest.raises(ValueError):
        fit(np.ones((10, 4), np.float32), **kwargs)
    q = fit(np.eye(8, dtype=np.float32), levels=1, codes=2, min_points_per_code=1)
    with pytest.raises(ValueError):
        q.encode(np.ones((2, 5), np.float32))


# --- on the real engine, broker and worker ------------------------------------------------------

import json  # noqa: E402

import httpx  # noqa: E402

from tests.conftest import ROOT, RUN  # noqa: E402

PRODUCTS = ("p000", "p001", "p010", "p016", "p018", "p024", "p031", "p040")
CATALOG = [{**d, "product": d["id"].split("-")[0]}  # the group key: one product's language versions share it
           for d in map(json.loads, (ROOT / "bench/demo_data/catalog.jsonl").read_text().splitlines())
           if d["id"].split("-")[0] in PRODUCTS]


def _all_docs(engine, index: str) -> dict[str, dict]:
    engine.refresh(index)
    resp = engine.search(index, {"size": 1000, "_source": ["embedding", "lang", "semantic_id*"]})
    return {h["_id"]: h["_source"] for h in resp["hits"]["hits"]}


@pytest.fixture(scope="module")
def coded(engine, worker, settings):
    """A products index of 8 products x 6 languages, ingested by the worker, then fitted and re-coded."""
    from pipelines.ingest import api
    from pipelines.ingest.semantic_ids import fit_index

    index = f"test-{RUN}-sid-catalog"
    results = api.wait(api.enqueue(index, CATALOG, settings), timeout_s=300)
    assert sum(r["indexed"] for r in results) == len(CATALOG)
    before = _all_docs(engine, index)
    assert not any("semantic_id" in s for s in before.values())  # no quantiser yet: no codes
    report = fit_index(index, settings, levels=2, codes=8, progress=False, group_key="product")
    return index, report, before


def test_fit_recodes_every_document_through_the_reindex(engine, coded):
    from pipelines.ingest.semantic_ids import index_quantizer

    index, report, before = coded
    assert report.vectors == len(CATALOG) and report.sizes == [8, 8]
    assert report.reindex["indexed"] == len(CATALOG) and report.reindex["semantic_ids"] == report.quantizer
    assert engine.aliases_of(index) == [report.reindex["target"]]  # the concrete index became an alias
    q = index_quantizer(engine, index)
    assert q is not None and q.id == report.quantizer
    docs = _all_docs(engine, index)
    assert set(docs) == set(before)  # every document kept
    for doc_id, src in docs.items():  # the worker wrote the codes of the vector it wrote
        want = q.fields(np.asarray([src["embedding"]], np.float32), [src["lang"]])[0]
        assert {k: src[k] for k in want} == want, doc_id
        assert src["embedding"] == pytest.approx(before[doc_id]["embedding"], abs=1e-5)
    # the same product's language versions mostly share the first level (measured in bench/semantic_ids.py)
    shared = sum(len({docs[f"{p}-{lang}"]["semantic_id_l1"] for lang in ("en", "de", "fr", "es", "ja", "zh")}) == 1
                 for p in PRODUCTS)
    assert shared >= 5, shared
    # the fit measured that on the group key, level by level, as the codes written say
    codes = np.asarray([[int(c) for c in docs[i]["semantic_id"].split("-")] for i in sorted(docs)])
    assert report.pair_quality == pair_quality(codes, [i.split("-")[0] for i in sorted(docs)])
    assert report.pair_quality[0]["recall"] >= report.pair_quality[1]["recall"]


def test_a_reindex_with_the_same_model_keeps_the_quantiser(engine, coded, settings):
    from pipelines.ingest.reindex import reindex

    index, report, _ = coded
    again = reindex(index, report.model, settings, progress=False)
    assert again.semantic_ids == report.quantizer
    docs = _all_docs(engine, index)
    assert len(docs) == len(CATALOG) and all("semantic_id" in s for s in docs.values())


def test_synchronous_writes_get_codes_too(engine, coded, svc):
    index, report, _ = coded
    doc = {**next(d for d in CATALOG if d["id"] == "p016-en"), "id": "copy-of-p016-en"}
    resp = httpx.put(f"{svc}/{index}/_doc/copy-of-p016-en", json=doc, params={"refresh": "true"}, timeout=60)
    assert resp.status_code == 201, resp.text
    try:
        docs = _all_docs(engine, index)
        assert docs["copy-of-p016-en"]["semantic_id"] == docs["p016-en"]["semantic_id"]
    finally:
        httpx.delete(f"{svc}/{index}/_doc/copy-of-p016-en", params={"refresh": "true"}, timeout=60)


def _search(svc: str, index: str, body: dict) -> dict:
    resp = httpx.post(f"{svc}/{index}/_search", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("retriever", ["hybrid", "knn", "rrf"])
def test_collapse_gives_one_hit_per_group_with_inner_hits(coded, svc, retriever):
    index, _, _ = coded
    text = "Roboterstaubsauger mit Laser"
    knn = {"knn": {"field": "embedding", "k": 50, "num_candidates": 100,
                   "query_vector_builder": {"text_embedding": {"model_text": text}}}}
    search = {"hybrid": {"query": {"hybrid": {"query": text}}}, "knn": {"retriever": knn},
              "rrf": {"retriever": {"rrf": {"retrievers": [
                  knn, {"standard": {"query": {"multi_match": {"query": text, "fields": ["title*"]}}}}]}}}}[retriever]
    plain = _search(svc, index, {**search, "size": 10, "_source": ["lang"]})
    # lang: derived by Polyseek, read from the index (answers' _source is the document as sent)
    body = {**search, "size": 10, "_source": ["title"], "docvalue_fields": ["lang"],
            "collapse": {"field": "semantic_id_l1", "inner_hits": {"name": "languages", "size": 10}}}
    resp = _search(svc, index, body)
    hits = resp["hits"]["hits"]
    values = [h["fields"]["semantic_id_l1"][0] for h in hits]
    assert len(values) == len(set(values)) > 1  # one hit per group
    assert len(hits) < len(plain["hits"]["hits"])
    assert resp["hits"]["total"] == plain["hits"]["total"]  # the total counts documents, as in Elasticsearch
    top = hits[0]
    assert top["_id"].startswith("p016") and top["fields"]["lang"] == ["de"]  # the query's language represents
    inner = top["inner_hits"]["languages"]["hits"]
    assert top["_id"] in [h["_id"] for h in inner["hits"]]
    assert {h["_id"] for h in inner["hits"]} >= {f"p016-{lang}" for lang in ("en", "de", "fr", "es")}
    assert inner["total"]["value"] == len(inner["hits"])
    # explicit language: the Japanese version represents the group
    ja = _search(svc, index, {**body, "collapse": {"field": "semantic_id_l1", "lang": "ja"}})
    assert ja["hits"]["hits"][0]["_id"] == "p016-ja" and "inner_hits" not in ja["hits"]["hits"][0]


def test_collapse_on_the_full_code_and_paging(coded, svc):
    index, _, _ = coded
    body = {"query": {"hybrid": {"query": "office chair"}}, "_source": False, "collapse": {"field": "semantic_id"}}
    first = _search(svc, index, {**body, "size": 3})
    second = _search(svc, index, {**body, "size": 3, "from": 3})
    values = [h["fields"]["semantic_id"][0] for h in first["hits"]["hits"] + second["hits"]["hits"]]
    assert len(values) == len(set(values)) == 6
    # URL parameters of the search (here preference) do not reach the mapping check
    resp = httpx.post(f"{svc}/{index}/_search", json={**body, "size": 3}, params={"preference": "_local"}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert [h["_id"] for h in resp.json()["hits"]["hits"]] == [h["_id"] for h in first["hits"]["hits"]]


@pytest.mark.parametrize("collapse,reason", [
    ({"field": "no_such_field"}, "no mapping found for [no_such_field]"),
    ({"field": "title"}, "collapse is not supported for the field [title] of the type [text]"),
    ({"field": "semantic_id", "bogus": 1}, "[search.collapse.bogus]"),
    ({"inner_hits": {}}, "[search.collapse.field]"),
])
def test_bad_collapse_is_a_400(coded, svc, collapse, reason):
    index, _, _ = coded
    resp = httpx.post(f"{svc}/{index}/_search", json={"query": {"hybrid": {"query": "chair"}}, "collapse": collapse},
                      timeout=60)
    assert resp.status_code == 400, resp.text
    assert reason in resp.json()["error"]["reason"]


def test_passthrough_collapse_is_the_engines(coded, svc, eng):
    index, _, _ = coded
    body = {"query": {"match": {"title": "chair"}}, "collapse": {"field": "semantic_id_l1"}, "_source": False}
    served, direct = _search(svc, index, body), _search(eng, index, body)
    assert [h["_id"] for h in served["hits"]["hits"]] == [h["_id"] for h in direct["hits"]["hits"]]
    assert served["hits"]["hits"] and all("fields" in h for h in served["hits"]["hits"])


def test_near_duplicates_cli_api_and_same_language_copies(coded, engine, svc):
    from pipelines.ingest.semantic_ids import near_duplicates

    index, _, _ = coded
    pairs = near_duplicates(engine, index)
    assert pairs and all(p.ids[0].split("-")[0] == p.ids[1].split("-")[0] for p in pairs)  # translations
    assert all(p.cosine >= engine.settings.near_duplicate_cosine for p in pairs)
    assert near_duplicates(engine, index, same_lang=True) == []
    doc = {**next(d for d in CATALOG if d["id"] == "p010-fr"), "id": "dup-p010-fr", "price": 9.99}
    httpx.put(f"{svc}/{index}/_doc/dup-p010-fr", json=doc, params={"refresh": "true"}, timeout=60).raise_for_status()
    try:
        resp = httpx.get(f"{svc}/{index}/_polyseek/near_duplicates", params={"same_lang": "true"}, timeout=60)
        assert resp.status_code == 200, resp.text
        assert [tuple(sorted(p["ids"])) for p in resp.json()["pairs"]] == [("dup-p010-fr", "p010-fr")]
        assert resp.json()["pairs"][0]["cosine"] > 0.99
        bad = httpx.get(f"{svc}/{index}/_polyseek/near_duplicates", params={"level": "x"}, timeout=60)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "illegal_argument_exception"
    finally:
        httpx.delete(f"{svc}/{index}/_doc/dup-p010-fr", params={"refresh": "true"}, timeout=60)


def test_near_duplicates_need_a_quantiser(engine, svc, index_name):
    engine.create_products_index(index_name)
    resp = httpx.get(f"{svc}/{index_name}/_polyseek/near_duplicates", timeout=60)
    assert resp.status_code == 400 and "semantic-ids fit" in resp.json()["error"]["reason"]
    assert httpx.get(f"{svc}/test-{RUN}-nope/_polyseek/near_duplicates", timeout=60).status_code == 404


def test_a_terms_aggregation_on_a_code_level_maps_the_catalog(coded, svc):
    index, report, _ = coded
    body = {"size": 0, "aggs": {"map": {"terms": {"field": "semantic_id_l1", "size": 50},
                                        "aggs": {"example": {"top_hits": {"size": 1, "_source": ["title"]}}}}}}
    buckets = _search(svc, index, body)["aggregations"]["map"]["buckets"]
    assert len(buckets) == report.groups_per_level[0]
    assert sum(b["doc_count"] for b in buckets) == len(CATALOG)
    assert all(b["example"]["hits"]["hits"][0]["_source"]["title"] for b in buckets)


def test_cli_near_duplicates_and_ingest_report(coded, engine, tmp_path, capsys):
    from polyseek.cli import main

    index, _, _ = coded
    assert main(["models", "semantic-ids", "near-duplicates", "--index", index, "--same-lang"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["models", "semantic-ids", "near-duplicates", "--index", f"test-{RUN}-nope"]) == 1
    assert "no semantic-id quantiser" in capsys.readouterr().err
    dup = {**next(d for d in CATALOG if d["id"] == "p024-es"), "id": "dup-p024-es"}
    (tmp_path / "dup.jsonl").write_text(json.dumps(dup, ensure_ascii=False) + "\n")
    try:
        assert main(["ingest", str(tmp_path / "dup.jsonl"), "--index", index, "--wait"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["indexed"] == 1 and summary["near_duplicates"] >= 1
        assert any(sorted(p["ids"]) == ["dup-p024-es", "p024-es"] for p in summary["near_duplicate_pairs"])
    finally:
        engine.request("DELETE", f"/{index}/_doc/dup-p024-es", params={"refresh": "true"}, ok_statuses=(404,))
