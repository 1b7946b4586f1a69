"""Many stock clients at once, mixing writes and searches through the service, on loopback.

    python -m bench.load [--clients 200] [--ops 6] [--write-share 0.3] [--index bench-load]

Each client is its own ``elasticsearch.Elasticsearch`` (own connection pool, as separate
applications would be) and runs ``--ops`` requests: single-document writes (``index`` with
an id; the service answers with the engine's item result once the worker has embedded and
written it), one ``bulk`` of five documents, and searches (``match`` passed through, the
``hybrid`` shorthand, a ``knn`` retriever).  The service and one ingest worker run as
their own processes (``polyseek serve``, ``polyseek worker``), as deployed.

Afterwards every id that was acknowledged must be in the index exactly once and nothing
else (ids compared in the engine); failed requests are counted by status.
Prints p50/p95/p99 per operation and writes ``bench/results/load.json``.  Only the demo
catalog shipped in the repo is used (no ``../shared``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from elasticsearch import ApiError, Elasticsearch, TransportError
from tqdm import tqdm

from bench.demo import CATALOG
from bench.evaluate import percentile
from bench.runner import WorkerProcess, free_port
from pipelines.engine.client import EngineClient
from pipelines.settings import get_settings


def start_service(port: int, log: Path) -> subprocess.Popen:
    """``polyseek serve`` in its own process; returns once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "polyseek", "serve", "--port", str(port)],
                            stdout=log.open("a"), stderr=subprocess.STDOUT, env=dict(os.environ))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("service did not start:\n" + log.read_text(errors="replace")[-3000:])


def searches(index: str, text: str) -> list[tuple[str, dict]]:
    """(operation, body) for the three kinds of search a client sends."""
    return [("search match", {"query": {"match": {"title": text}}}),
            ("search hybrid", {"query": {"hybrid": {"query": text}}}),
            ("search knn", {"retriever": {"knn": {"field": "embedding", "k": 10, "num_candidates": 50,
                                                   "query_vector_builder": {"text_embedding": {"model_text": text}}}}})]


def run(url: str, index: str, clients: int, ops: int, write_share: float, seed: int) -> dict:
    """The mixed load; returns latencies per operation, failures and the ids acknowledged."""
    catalog = [json.loads(line) for line in CATALOG.read_text().splitlines() if line.strip()]
    texts = [d["title"] for d in catalog]
    latencies: dict[str, list[float]] = {}
    failures: Counter = Counter()
    acknowledged: set[str] = set()
    lock = threading.Lock()
    progress = tqdm(total=clients * ops, desc="requests", unit="req")

    def client(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        es = Elasticsearch(url, request_timeout=600, max_retries=0)
        try:
            for j in range(ops):
                if j == ops - 1:
                    op = "bulk (5 docs)"
                    docs = {f"load-{k}-{j}-{m}": {**rng.choice(catalog), "id": f"load-{k}-{j}-{m}"} for m in range(5)}
                    call = lambda: es.bulk(operations=[x for i, d in docs.items()  # noqa: E731
                                                       for x in ({"index": {"_index": index, "_id": i}}, d)])
                elif rng.random() < write_share:
                    op = "index (1 doc)"
                    doc_id = f"load-{k}-{j}"
                    docs = {doc_id: {**rng.choice(catalog), "id": doc_id}}
                    call = lambda: es.index(index=index, id=doc_id, document=docs[doc_id])  # noqa: E731
                else:
                    op, body = rng.choice(searches(index, rng.choice(texts)))
                    docs = {}
                    call = lambda: es.search(index=index, **body)  # noqa: E731
                t0 = time.perf_counter()
                try:
                    resp = call()
                    ok_ids = set(docs)
                    if op.startswith("bulk") and resp.get("errors"):
                        ok_ids = {it["index"]["_id"] for it in resp["items"] if it["index"].get("status", 500) < 300}
                        with lock:
                            failures[f"{op}: item error"] += len(docs) - len(ok_ids)
                except (ApiError, TransportError) as exc:
                    ok_ids = set()
                    with lock:
                        failures[f"{op}: {getattr(exc, 'status_code', None) or type(exc).__name__}"] += 1
                took = time.perf_counter() - t0
                with lock:
                    latencies.setdefault(op, []).append(took)
                    acknowledged.update(ok_ids)
                    progress.update()
        finally:
            es.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    progress.close()
    return {"latencies": latencies, "failures": dict(failures), "acknowledged": acknowledged,
            "seconds": time.perf_counter() - t0}


def stored_ids(engine: EngineClient, index: str) -> list[str]:
    """Every ``_id`` in ``index`` (duplicates would show as repeats); a load writes far fewer than 10,000."""
    engine.refresh(index)
    resp = engine.search(index, {"size": 10_000, "_source": False, "track_total_hits": True,
                                 "query": {"match_all": {}}})
    if resp["hits"]["total"]["value"] > 10_000:
        raise RuntimeError("more than 10,000 documents: compare ids with a point-in-time scan")
    return [h["_id"] for h in resp["hits"]["hits"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--ops", type=int, default=6, help="requests per client (the last one a 5-document bulk)")
    parser.add_argument("--write-share", type=float, default=0.3, help="share of the other requests that write")
    parser.add_argument("--index", default="bench-load")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/load.json"))
    args = parser.parse_args(argv)
    settings = get_settings()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with EngineClient(settings) as engine:
        engine.delete_index(args.index)
        engine.create_products_index(args.index, dims=settings.dense_dims)
    worker = WorkerProcess(args.out.parent / "load-worker.log")
    worker.start()
    port = free_port()
    service = start_service(port, args.out.parent / "load-service.log")
    try:
        result = run(f"http://127.0.0.1:{port}", args.index, args.clients, args.ops, args.write_share, args.seed)
    finally:
        service.terminate()
        service.wait(timeout=60)
        worker.stop()
    with EngineClient(settings) as engine:
        ids = stored_ids(engine, args.index)
    counts = Counter(ids)
    acknowledged = result["acknowledged"]
    check = {"acknowledged": len(acknowledged), "stored": len(ids),
             "lost": len(acknowledged - set(ids)), "duplicated": sum(1 for c in counts.values() if c > 1),
             "unexpected": len(set(ids) - acknowledged)}
    rows = {op: {"n": len(v), "p50_ms": round(1000 * percentile(v, 50), 1), "p95_ms": round(1000 * percentile(v, 95), 1),
                 "p99_ms": round(1000 * percentile(v, 99), 1)} for op, v in sorted(result["latencies"].items())}
    requests = sum(r["n"] for r in rows.values())
    lines = [f"{args.clients} clients x {args.ops} requests, {result['seconds']:.0f} s, "
             f"{requests / result['seconds']:.1f} requests/s",
             f"{'operation':<16}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"]
    lines += [f"{op:<16}{r['n']:>6}{r['p50_ms']:>10}{r['p95_ms']:>10}{r['p99_ms']:>10}" for op, r in rows.items()]
    lines.append(f"failed requests: {sum(result['failures'].values())} {result['failures'] or ''}")
    lines.append("documents: " + ", ".join(f"{k} {v}" for k, v in check.items()))
    text = "\n".join(lines)
    args.out.write_text(json.dumps({"clients": args.clients, "ops": args.ops, "write_share": args.write_share,
                                    "seconds": round(result["seconds"], 1), "operations": rows,
                                    "failures": result["failures"], "documents": check, "table": text}, indent=2))
    print(text)
    ok = not result["failures"] and check["lost"] == check["duplicated"] == check["unexpected"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
