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

from pipelines.engine.client import EngineClient
from pipelines.settings import get_settings
from service.runner import WorkerProcess, serve_in_thread

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
            engine.delete_index(INDEX)
        docs = [json.loads(line) for line in CATALOG.read_text().splitlines()]
        actions = ({"_index": INDEX, "_id": d["id"], "_source": d} for d in docs)
        ok, errors = helpers.bulk(es, actions, chunk_size=500, refresh="wait_for", raise_on_error=False)
        print(f"\ningested {ok} of {len(docs)} products through the queue ({len(errors)} errors)")
        for lang, text in QUERIES:
            resp = es.search(index=INDEX, query={"hybrid": {"query": text}}, size=5,
                             source=["title", "lang", "price", "currency"])
            print(f"\n[{lang}] {text}   ({resp['took']} ms)")
            for hit in resp["hits"]["hits"]:
                s = hit["_source"]
                print(f"  {hit['_score']:.4f}  [{s['lang']}] {s['title']}  {s.get('price')} {s.get('currency')}")
        resp = es.search(index=INDEX, retriever={"knn": {
            "field": "embedding", "k": 5, "num_candidates": 50, "filter": {"term": {"lang": "en"}},
            "query_vector_builder": {"text_embedding": {"model_text": "无线降噪耳机"}}}}, size=3, source=["title"])
        print("\n[zh -> en only] 无线降噪耳机 as a kNN retriever with a language filter:")
        for hit in resp["hits"]["hits"]:
            print(f"  {hit['_score']:.4f}  {hit['_source']['title']}")
        return 0
    finally:
        stop()
        worker.stop()


if __name__ == "__main__":
    sys.exit(main())
