"""Stale vectors: an index embedded by other weights than the model of its name loaded now (a model rebuilt
under the same name) is reported by the service, the workers and ``polyseek reindex --check``.

Two model caches in tmp hold the same tiny model: ``built`` as exported, ``rebuilt`` a copy whose card
records another fingerprint (as a rebuild with a new adapter would): nothing in the shared model cache
is touched.  The real engine, the real service, the real write path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest

from pipelines.encoders.dense import TextEncoder
from pipelines.engine.client import EngineClient
from pipelines.engine.dialect import FINGERPRINT_META_KEY
from pipelines.ingest.tasks import process_batch
from pipelines.models.card import compute_fingerprint, model_paths
from pipelines.models.export import export_onnx, quantize_int8
from pipelines.models.importer import import_model
from pipelines.stale_vectors import NO_FINGERPRINT, check_indices
from tests.conftest import ROOT, build_tiny_bert
from tests.test_ingest import products

MODEL = "fp-tiny"
REBUILT = "feedfacefeedface"  # the fingerprint the rebuilt copy's card records
KNN = {"retriever": {"knn": {"field": "embedding", "k": 3, "num_candidates": 10,
                             "query_vector_builder": {"text_embedding": {"model_text": "wireless headphones"}}}}}


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    """``built``: the tiny model as exported; ``rebuilt``: the same files, its card another fingerprint."""
    built = model_paths(tmp_path_factory.mktemp("built"), MODEL)
    import_model(str(build_tiny_bert(tmp_path_factory.mktemp("tiny-hf"))), built, query_prefix="q: ",
                 passage_prefix="p: ")
    export_onnx(built)
    quantize_int8(built)
    rebuilt = model_paths(tmp_path_factory.mktemp("rebuilt"), MODEL)
    shutil.copytree(built.root, rebuilt.root)
    card = rebuilt.read_card()
    card.fingerprint = REBUILT
    rebuilt.write_card(card)
    return {"built": built.root.parent, "rebuilt": rebuilt.root.parent}


@pytest.fixture(scope="module")
def rebuilt_settings(settings, caches):
    return settings.model_copy(update={"model_dir": caches["rebuilt"], "dense_model": MODEL})


@pytest.fixture(scope="module")
def rebuilt_svc(rebuilt_settings, engine):
    """A query service loading the rebuilt model."""
    from bench.runner import serve_in_thread

    url, stop = serve_in_thread(rebuilt_settings)
    yield url
    stop()


def write(engine: EngineClient, cache: Path, index: str, docs: list[dict]) -> dict:
    """``docs`` written into ``index`` on the ingest path, embedded by the model of ``cache``."""
    result = process_batch(index, docs, encoder=TextEncoder(model_paths(cache, MODEL), "int8"), engine=engine)
    engine.refresh(index)
    return result


def warnings_of(url: str, index: str, body: dict) -> list[str]:
    resp = httpx.post(f"{url}/{index}/_search", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.headers.get_list("warning")


def test_export_records_a_reproducible_fingerprint(caches, tmp_path):
    built = model_paths(caches["built"], MODEL)
    card = built.read_card()
    assert len(card.fingerprint) == 16 and card.fingerprint == compute_fingerprint(built, card)
    again = model_paths(tmp_path, MODEL)
    shutil.copytree(built.root, again.root)
    export_onnx(again)  # a rebuild of unchanged weights
    assert again.read_card().fingerprint == card.fingerprint
    data = json.loads(again.card_file.read_text())
    again.card_file.write_text(json.dumps({**data, "a_later_key": 1}))
    assert again.read_card().fingerprint == card.fingerprint  # a newer card's keys are skipped


def test_search_on_an_index_of_other_weights_warns(engine, settings, caches, rebuilt_svc, index_name):
    built = model_paths(caches["built"], MODEL)
    write(engine, caches["built"], index_name, products(8, "fa"))
    meta = engine.request("GET", f"/{index_name}/_mapping")[index_name]["mappings"]["_meta"]
    assert meta[FINGERPRINT_META_KEY] == built.read_card().fingerprint != REBUILT

    (knn,) = warnings_of(rebuilt_svc, index_name, KNN)
    assert knn.startswith('299 Elasticsearch-') and f"[{index_name}]" in knn
    assert built.read_card().fingerprint in knn and REBUILT in knn
    assert f"polyseek reindex {index_name} --model {MODEL}" in knn
    assert warnings_of(rebuilt_svc, index_name, {"query": {"hybrid": {"query": "wireless headphones"}}})
    # BM25 embeds nothing: no warning
    assert not warnings_of(rebuilt_svc, index_name, {"retriever": {"standard": {"query": {"match": {"title": "x"}}}}})
    # _msearch carries its items' warnings; elasticsearch-py raises them as ElasticsearchWarning
    lines = b"".join(json.dumps(part).encode() + b"\n" for part in ({"index": index_name}, KNN))
    resp = httpx.post(f"{rebuilt_svc}/_msearch", content=lines, headers={"content-type": "application/x-ndjson"})
    assert resp.status_code == 200 and REBUILT in resp.headers["warning"]
    from elasticsearch import Elasticsearch, ElasticsearchWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Elasticsearch(rebuilt_svc, request_timeout=60).search(index=index_name, **KNN)
    assert any(issubclass(w.category, ElasticsearchWarning) and REBUILT in str(w.message) for w in caught)


def test_same_fingerprint_or_none_recorded_gets_no_warning(engine, settings, caches, rebuilt_svc, index_name):
    same, old = f"{index_name}-same", f"{index_name}-old"
    write(engine, caches["rebuilt"], same, products(8, "fs"))  # created by the loaded weights
    assert not warnings_of(rebuilt_svc, same, KNN)
    # an index created before fingerprints existed: the model's name only
    body = engine.dialect.product_index_body(32, MODEL, settings.product_fields)
    assert FINGERPRINT_META_KEY not in body["mappings"]["_meta"]
    engine.request("PUT", f"/{old}", json_body=body)
    write(engine, caches["built"], old, products(8, "fo"))
    assert not warnings_of(rebuilt_svc, old, KNN)
    assert not warnings_of(rebuilt_svc, old, {"query": {"hybrid": {"query": "wireless headphones"}}})


def test_worker_writes_into_an_index_of_other_weights_logged_counted_and_checked(engine, settings, caches, caplog,
                                                                               index_name):
    built_fp = model_paths(caches["built"], MODEL).read_card().fingerprint
    write(engine, caches["built"], index_name, products(6, "wa"))
    with caplog.at_level(logging.WARNING, logger="pipelines.ingest.tasks"):
        result = write(engine, caches["rebuilt"], index_name, products(4, "wb"))
    assert result["indexed"] == 4 and result["stale_model"] == 4
    assert any(index_name in r.getMessage() and REBUILT in r.getMessage() for r in caplog.records)
    src = engine.request("GET", f"/{index_name}/_doc/wb-1")["_source"]
    assert src["model"]["fingerprint"] == REBUILT

    (checked,) = check_indices(engine, caches["rebuilt"], index_name)
    assert (checked.state, checked.recorded, checked.loaded) == ("stale", built_fp, REBUILT)
    assert checked.documents == {built_fp: 6, REBUILT: 4}
    (same,) = check_indices(engine, caches["built"], index_name)
    assert same.state == "mixed" and same.needs_reindex
    assert write(engine, caches["built"], index_name, products(2, "wc"))["stale_model"] == 0

    env = {**os.environ, "POLYSEEK_MODEL_DIR": str(caches["rebuilt"]), "POLYSEEK_ENGINE_URL": settings.engine_url}
    cli = subprocess.run([sys.executable, "-m", "polyseek", "reindex", "--check", index_name], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1, cli.stderr
    assert f"fix: polyseek reindex {index_name} --model {MODEL}" in cli.stdout and "stale" in cli.stdout


def test_check_reports_an_index_without_fingerprint_as_unknown(engine, settings, caches, index_name):
    engine.request("PUT", f"/{index_name}", json_body=engine.dialect.product_index_body(32, MODEL,
                                                                                        settings.product_fields))
    engine.bulk_index(index_name, [("x", {"title": "old", "model": {"dense": f"{MODEL}@1+int8"}})], refresh=True)
    (checked,) = check_indices(engine, caches["rebuilt"], index_name)
    assert checked.state == "unknown" and not checked.needs_reindex and checked.documents == {NO_FINGERPRINT: 1}
