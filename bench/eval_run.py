"""Drive an evaluation end to end: worker + service, ingest the benchmark through the queue, score."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import datasets
from bench.evaluate import evaluate_benchmark
from pipelines.engine.client import EngineClient
from pipelines.ingest import api as ingest
from pipelines.settings import Settings, get_settings
from service.runner import WorkerProcess, serve_in_thread

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def run_eval(name: str, *, small: bool = False, data_dir: Path = DEFAULT_DATA,
             out_dir: Path = Path("bench/results"), settings: Settings | None = None,
             reranker: str | None = None, reuse_index: bool = False, limit: int | None = None) -> dict[str, Any]:
    """Ingest ``name`` into ``eval-<name>`` and evaluate every method; returns the report."""
    from elasticsearch import Elasticsearch

    settings = settings or get_settings()
    bench = datasets.load(name, data_dir, small=small, limit=limit)
    index = f"eval-{bench.name}{'-small' if small else ''}"
    worker = WorkerProcess(out_dir / "eval-worker.log", concurrency=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    with EngineClient(settings) as engine:
        fresh = not (reuse_index and engine.index_exists(index) and engine.count(index) == len(bench.corpus))
        if fresh:
            engine.delete_index(index)
    if fresh:
        worker.start()
    url, stop = serve_in_thread(settings)
    try:
        t0 = time.perf_counter()
        if fresh:
            ingest.wait(ingest.enqueue(index, list(bench.corpus.values()), settings), timeout_s=7200)
            with EngineClient(settings) as engine:
                engine.refresh(index)
        ingest_s = time.perf_counter() - t0
        es = Elasticsearch(url, request_timeout=120)
        from service.app import Polyseek

        has_sparse = Polyseek(settings).dense(None).has_sparse
        report = evaluate_benchmark(bench, es, index, fields=["title^2", "title_*^2", "category", "description",
                                                             "description_*"],
                                    sparse=has_sparse, reranker=reranker or settings.reranker_model,
                                    out_dir=out_dir)
        report["ingest_s"] = round(ingest_s, 1)
        return report
    finally:
        stop()
        worker.stop()
