"""Drive an evaluation end to end: worker + service, ingest the benchmark through the queue, score."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import datasets
from bench.evaluate import evaluate_benchmark
from bench.runner import WorkerProcess, serve_in_thread
from pipelines.engine.client import EngineClient
from pipelines.ingest import api as ingest
from pipelines.settings import Settings, get_settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


EVAL_FIELDS = ["title^2", "title_*^2", "category", "description", "description_*"]


@contextmanager
def served(bench: datasets.Benchmark, index: str, settings: Settings, out_dir: Path,
           reuse_index: bool = False) -> Iterator[tuple[Any, float]]:
    """``bench``'s corpus ingested into ``index`` through the queue, and a client of the service over it.

    Yields ``(elasticsearch client, ingest seconds)``; the worker and the service stop afterwards.
    """
    from elasticsearch import Elasticsearch

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
        yield Elasticsearch(url, request_timeout=120), time.perf_counter() - t0
    finally:
        stop()
        worker.stop()


def run_eval(name: str, *, small: bool = False, data_dir: Path = DEFAULT_DATA,
             out_dir: Path = Path("bench/results"), settings: Settings | None = None,
             reranker: str | None = None, reuse_index: bool = False, limit: int | None = None,
             only: list[str] | None = None) -> dict[str, Any]:
    """Ingest ``name`` into ``eval-<name>`` and evaluate every method (or those in ``only``); returns the report."""
    from bench.evaluate import engine_score_sum
    from pipelines.encoders.dense import open_encoder
    from pipelines.engine.dialect import dialect_for
    from service.state import Polyseek

    settings = settings or get_settings()
    bench = datasets.load(name, data_dir, small=small, limit=limit)
    index = f"eval-{bench.name}{'-small' if small else ''}"
    with served(bench, index, settings, out_dir, reuse_index) as (es, ingest_s):
        has_sparse = Polyseek(settings).dense(None).has_sparse
        encoder = open_encoder(settings.resolved_model_dir, settings.dense_model, settings.encoder_precision)
        embed = lambda text: encoder.encode([text], is_query=True).dense[0].tolist()  # noqa: E731
        report = evaluate_benchmark(bench, es, index, fields=EVAL_FIELDS, sparse=has_sparse,
                                    reranker=reranker or settings.reranker_model, out_dir=out_dir,
                                    engine_hybrid=engine_score_sum(EVAL_FIELDS, embed, dialect_for(settings.engine)),
                                    only=only)
        report["ingest_s"] = round(ingest_s, 1)
        return report

