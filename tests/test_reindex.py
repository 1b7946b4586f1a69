"""Zero-downtime model change: reindex behind an alias, on the real queue, engine and service."""

from __future__ import annotations

import shutil

import pytest

from pipelines.ingest import api
from pipelines.ingest.reindex import ReindexError, reindex
from pipelines.models.card import model_paths
from pipelines.models.export import export_onnx, quantize_int8
from pipelines.models.importer import import_model
from tests.conftest import RUN, build_tiny_bert
from tests.test_ingest import all_ids, products


@pytest.fixture(scope="module")
def tiny_model(settings, tmp_path_factory):
    """A 32-dimensional model in the real model cache, where workers and the service look."""
    name = f"test-tiny-{RUN}"
    paths = model_paths(settings.resolved_model_dir, name)
    import_model(str(build_tiny_bert(tmp_path_factory.mktemp("tiny-hf"))), paths, query_prefix="q: ",
                 passage_prefix="p: ")
    export_onnx(paths)
    quantize_int8(paths)
    yield name
    shutil.rmtree(paths.root, ignore_errors=True)


def knn_ids(es, index: str, text: str) -> list[str]:
    resp = es.search(index=index, retriever={"knn": {"field": "embedding", "k": 5, "num_candidates": 20,
                                                     "query_vector_builder": {"text_embedding": {"model_text": text}}}})
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_reindex_onto_a_new_model_switches_the_alias(worker, engine, settings, es, index_name, tiny_model):
    docs = products(40, "rx")
    api.wait(api.enqueue(index_name, docs))  # the index is created on first use, with the default model
    engine.refresh(index_name)  # written is not yet searchable: the engine's refresh makes it so
    assert engine.index_model(index_name) == settings.dense_model
    assert len(knn_ids(es, index_name, "Kopfhörer")) == 5

    first = reindex(index_name, tiny_model, settings, progress=False)
    assert first.previous == [index_name] and first.documents == first.indexed == 40
    assert engine.aliases_of(index_name) == [first.target]  # the concrete index became an alias
    assert sorted(all_ids(engine, index_name)) == sorted(d["id"] for d in docs)
    # _source_includes=*: Elasticsearch 9 leaves vectors out of _source unless asked
    src = engine.request("GET", f"/{index_name}/_doc/rx-3", params={"_source_includes": "*"})["_source"]
    assert len(src["embedding"]) == 32 and src["model"]["dense"].startswith(tiny_model)
    assert src["extra_field"] == {"k": 3} and src["lang"] == "es" and src["title_es"] == docs[3]["title"]
    # the service embeds with the index's own model: a 384-d e5 vector would be refused by this index
    assert len(knn_ids(es, index_name, "Kopfhörer")) == 5
    # new writes through the alias go to the new index, embedded by its model
    api.wait(api.enqueue(index_name, [{"id": "late", "title": "Wireless headphones"}]))
    assert len(engine.request("GET", f"/{index_name}/_doc/late", params={"_source_includes": "*"})["_source"]["embedding"]) == 32

    second = reindex(index_name, settings.dense_model, settings, progress=False)
    assert second.previous == [first.target] and second.indexed == 41
    assert engine.aliases_of(index_name) == [second.target]
    assert not engine.index_exists(first.target)  # the previous physical index is gone
    assert len(engine.request("GET", f"/{index_name}/_doc/late", params={"_source_includes": "*"})["_source"]["embedding"]) == 384


def test_reindex_refuses_a_missing_model_or_index(settings, engine, index_name, tiny_model):
    with pytest.raises(FileNotFoundError):
        reindex("whatever", "no-such-model", settings, progress=False)
    with pytest.raises(ReindexError):
        reindex(index_name, tiny_model, settings, progress=False)
