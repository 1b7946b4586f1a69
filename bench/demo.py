"""``make demo``: the whole product on one machine, end to end.

Starts an ingest worker and the query service (the engine and model are set up
by the Makefile), sends the sample multilingual catalog through the queue with
the stock ``elasticsearch`` client's bulk helper, and answers example queries in
six languages through the same client.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.runner import WorkerProcess, serve_in_thread
from pipelines.engine.client import EngineClient
from pipelines.settings import get_settings

CATALOG = Path(__file__).with_name("demo_data") / "catalog.jsonl"
INDEX = "demo-products"
QUERIES = [
    ("zh", "无线降噪耳机"),
    ("de", "kabellose Kopfhörer"),
    ("es", "silla de oficina ergonómica"),
    ("ja", "防水アクションカメラ"),
    ("fr", "cafetière à piston"),
    ("en", "robot vacuum"),
]


def main() -> int:
    from elasticsearch import Elasticsearch, helpers

    settings = get_settings()
    worker = WorkerProcess(settings.cache_dir / "demo-worker.log")
    worker.start()
    url, stop = serve_in_thread(settings, settings.service_port)
    print(f"broker: {settings.resolved_broker_url}\nengine: {settings.engine_url}\nservice: {url}")
    try:
        es = Elasticsearch(url, request_timeout=300)
        with EngineClient(settings) as engine:  # start clean: an admin call, straight to the engine
            for name in engine.aliases_of(INDEX) or [INDEX]:  # semantic ids made it an alias last time
                engine.delete_index(name)
        docs = [json.loads(line) for line in CATALOG.read_text().splitlines()]
        actions = ({"_index": INDEX, "_id": d["id"], "_source": d} for d in docs)
        ok, errors = helpers.bulk(es, actions, chunk_size=500, refresh="wait_for", raise_on_error=False)
        print(f"\ningested {ok} of {len(docs)} products through the queue ({len(errors)} errors)")
        for lang, text in QUERIES:
            resp = es.search(index=INDEX, query={"hybrid": {"query": text}}, size=5,
                             source=["title", "price", "currency"], docvalue_fields=["lang"])  # lang: detected
            print(f"\n[{lang}] {text}   ({resp['took']} ms)")
            for hit in resp["hits"]["hits"]:
                s = hit["_source"]
                print(f"  {hit['_score']:.4f}  [{hit['fields']['lang'][0]}] {s['title']}  {s.get('price')} "
                      f"{s.get('currency')}")
        resp = es.search(index=INDEX, retriever={"knn": {
            "field": "embedding", "k": 5, "num_candidates": 50, "filter": {"term": {"lang": "en"}},
            "query_vector_builder": {"text_embedding": {"model_text": "无线降噪耳机"}}}}, size=3, source=["title"])
        print("\n[zh -> en only] 无线降噪耳机 as a kNN retriever with a language filter:")
        for hit in resp["hits"]["hits"]:
            print(f"  {hit['_score']:.4f}  {hit['_source']['title']}")
        print_collapsed(es, settings)
        return 0
    finally:
        stop()
        worker.stop()


def print_collapsed(es, settings) -> None:
    """Fit semantic ids on the demo index (re-coding it behind an alias through the queue), then the
    example queries collapsed on the first code level: one line per product, in the shopper's language."""
    from pipelines.engine.client import EngineClient
    from pipelines.ingest.semantic_ids import fit_index, near_duplicates

    report = fit_index(INDEX, settings, progress=False)
    print(f"\nsemantic ids: quantiser {report.quantizer}, {report.sizes} codes per level, fitted on "
          f"{report.vectors} vectors in {report.fit_seconds} s; {report.groups_per_level[0]} groups at level 1; "
          f"re-coded {report.reindex['indexed']} products into {report.reindex['target']}")
    with EngineClient(settings) as engine:
        pairs = near_duplicates(engine, INDEX)
    print(f"near-duplicates (same level-1 code, cosine centred per language >= {settings.near_duplicate_cosine}): "
          f"{len(pairs)} pairs, e.g. {pairs[0].ids} {pairs[0].cosine}" if pairs else "near-duplicates: none")
    for lang, text in QUERIES:
        resp = es.search(index=INDEX, query={"hybrid": {"query": text}}, size=5, source=["title", "market"],
                         collapse={"field": "semantic_id_l1", "inner_hits": {"name": "languages", "size": 10,
                                                                              "_source": ["market"]}})
        print(f"\n[{lang}] {text}   collapsed on semantic_id_l1 ({resp['took']} ms)")
        for hit in resp["hits"]["hits"]:  # market: the catalog's own language field (answers are as sent)
            s = hit["_source"]
            markets = [h["_source"]["market"] for h in hit["inner_hits"]["languages"]["hits"]["hits"]]
            print(f"  {hit['_score']:.4f}  [{s['market']}] {s['title']}   ({' '.join(markets)})")


if __name__ == "__main__":
    sys.exit(main())
