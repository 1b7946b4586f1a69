"""Query latency and throughput through the service, per method and concurrency.

    python -m bench.query --index bench-10000-int8 [--clients 1 8 32] [--requests 200]

Methods: BM25 straight to the engine and BM25 through the service (pass-through
overhead), kNN, the hybrid shorthand with its default fusion, hybrid RRF over BM25 +
kNN + sparse, and the default hybrid + rerank top-20 (when a reranker is configured).
Prints p50/p95/p99 and QPS per (method, clients).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.corpus import queries
from bench.eval_run import DEFAULT_DATA
from bench.evaluate import percentile
from bench.runner import peak_rss_mb, serve_in_thread
from pipelines.settings import get_settings


def bodies(reranker: str | None) -> dict[str, tuple[str, callable]]:
    """method -> (target, body builder); target 'engine' or 'service'."""
    bm25 = lambda q: {"query": {"multi_match": {"query": q, "fields": ["title^2", "title_*", "category"]}}}  # noqa: E731
    out = {
        "bm25 engine direct": ("engine", bm25),
        "bm25 pass-through": ("service", bm25),
        "knn": ("service", lambda q: {"retriever": {"knn": {"field": "embedding", "k": 10, "num_candidates": 100,
                                                            "query_vector_builder": {"text_embedding": {"model_text": q}}}}}),
        "hybrid (default)": ("service", lambda q: {"query": {"hybrid": {"query": q, "rerank": False}}}),
        "hybrid rrf bm25+knn+sparse": ("service", lambda q: {"query": {"hybrid": {
            "query": q, "rerank": False, "fusion": "rrf", "weights": {"bm25": 1, "knn": 1, "sparse": 1}}}}),
    }
    if reranker:
        out["hybrid (default) + rerank top-20"] = ("service", lambda q: {"query": {"hybrid": {"query": q,
                                                                                             "rerank": True}}})
    return out


def load(url: str, index: str, build, texts: list[str], clients: int, requests: int) -> dict:
    """``requests`` searches from ``clients`` threads, each with its own connection."""
    local = [httpx.Client(base_url=url, timeout=60) for _ in range(clients)]
    latencies: list[float] = []

    def worker(k: int) -> None:
        client = local[k]
        for i in range(k, requests, clients):
            t0 = time.perf_counter()
            resp = client.post(f"/{index}/_search", json={"size": 10, "_source": ["title"], **build(texts[i % len(texts)])})
            resp.raise_for_status()
            latencies.append(1000 * (time.perf_counter() - t0))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    wall = time.perf_counter() - t0
    for c in local:
        c.close()
    return {"clients": clients, "requests": len(latencies), "p50_ms": round(statistics.median(latencies), 2),
            "p95_ms": round(percentile(latencies, 95), 2), "p99_ms": round(percentile(latencies, 99), 2),
            "qps": round(len(latencies) / wall, 1)}


def table(rows: list[dict]) -> str:
    """Latency percentiles and QPS per (method, clients); the pass-through overhead."""
    lines = [f"{'method':<34}{'clients':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'QPS':>8}"]
    for r in rows:
        lines.append(f"{r['method']:<34}{r['clients']:>8}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}{r['qps']:>8}")
    direct = {r["clients"]: r["p50_ms"] for r in rows if r["method"] == "bm25 engine direct"}
    through = {r["clients"]: r["p50_ms"] for r in rows if r["method"] == "bm25 pass-through"}
    if 1 in direct and 1 in through:
        lines.append(f"\npass-through overhead p50 at 1 client: {through[1] - direct[1]:.2f} ms (target <= 3 ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--methods", nargs="+", help="only these methods (names as in the table)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/results/query.json"))
    args = parser.parse_args(argv)
    settings = get_settings().model_copy(update={"query_log": True})
    url, stop = serve_in_thread(settings)
    texts = queries(500, args.data)
    rows = []
    try:
        for name, (target, build) in bodies(settings.reranker_model).items():
            if args.methods and name not in args.methods:
                continue
            base = settings.engine_url if target == "engine" else url
            load(base, args.index, build, texts[:20], 1, 20)  # warm-up (models, caches, connections)
            for clients in args.clients:
                print(f"{name} x{clients} ...", file=sys.stderr, flush=True)
                rows.append({"method": name, **load(base, args.index, build, texts[20:], clients, args.requests)})
    finally:
        stop()
    rss = peak_rss_mb()  # the service runs in this process
    text = table(rows) + f"\nquery service peak RSS (in-process, models loaded): {rss:.0f} MB"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"index": args.index, "rows": rows, "service_peak_rss_mb": rss, "table": text},
                                   indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
