"""Ingest speed: docs/s end to end (queue -> encoders -> engine) and where the time goes.

    python -m bench.ingest [--n 10000] [--workers 1 2] [--precisions int8 fp32]

End to end: N products enqueued, W worker processes (onnxruntime threads split
between them), wall time until every batch is written.  Per stage: one worker's
batch work timed in-process (validate + language detection, encode, bulk write).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.corpus import products
from bench.eval_run import DEFAULT_DATA
from bench.runner import WorkerProcess
from pipelines.engine.client import EngineClient
from pipelines.ingest import api as ingest
from pipelines.settings import get_settings


def end_to_end(docs: list[dict], workers: int, precision: str, index: str) -> dict:
    settings = get_settings()
    with EngineClient(settings) as engine:
        engine.delete_index(index)
        engine.create_products_index(index)
    env = {**os.environ, "POLYSEEK_ENCODER_PRECISION": precision,
           "POLYSEEK_ENCODER_THREADS": str(max(1, 2 // workers))}
    procs = [WorkerProcess(Path(f"bench/results/ingest-worker-{i}.log"), env=env) for i in range(workers)]
    for p in procs:
        p.start()
    try:
        t0 = time.perf_counter()
        ids = ingest.enqueue(index, docs, settings)
        results = ingest.wait(ids, timeout_s=7200)
        wall = time.perf_counter() - t0
        rss = [p.peak_rss_mb() for p in procs]
    finally:
        for p in procs:
            p.stop()
    indexed = sum(r["indexed"] for r in results)
    return {"workers": workers, "precision": precision, "docs": len(docs), "indexed": indexed,
            "seconds": round(wall, 1), "docs_per_s": round(indexed / wall, 1),
            "docs_per_s_per_core": round(indexed / wall / min(2, os.cpu_count() or 2), 1),
            "worker_peak_rss_mb": max(rss)}


def stages(docs: list[dict], precision: str, index: str, batch: int = 64) -> dict:
    """Seconds per 1k documents in each stage, measured in this process."""
    from pipelines.encoders.dense import open_encoder
    from pipelines.ingest.documents import validate
    from pipelines.ingest.tasks import embed_products

    s = get_settings()
    enc = open_encoder(s.resolved_model_dir, s.dense_model, precision, threads=2)
    t = {"validate+langid": 0.0, "encode": 0.0, "bulk": 0.0}
    with EngineClient(s) as engine:
        engine.create_products_index(index)
        for start in range(0, len(docs), batch):
            t0 = time.perf_counter()
            prods = [validate(d, max_bytes=s.max_document_bytes) for d in docs[start:start + batch]]
            t1 = time.perf_counter()
            sources = embed_products(enc, prods)
            t2 = time.perf_counter()
            engine.bulk_index(index, sources)
            t3 = time.perf_counter()
            t["validate+langid"] += t1 - t0
            t["encode"] += t2 - t1
            t["bulk"] += t3 - t2
    total = sum(t.values())
    return {"precision": precision, "docs": len(docs),
            "ms_per_doc": {k: round(1000 * v / len(docs), 2) for k, v in t.items()},
            "share": {k: round(v / total, 3) for k, v in t.items()}}


def table(rows: list[dict], stage_rows: list[dict]) -> str:
    """End-to-end docs/s per (n, workers, precision) and where one worker's time goes."""
    lines = [f"{'n':>7}{'workers':>8}{'prec':>10}{'seconds':>9}{'docs/s':>9}{'per core':>9}{'worker RSS':>12}"]
    for r in rows:
        lines.append(f"{r['n']:>7}{r['workers']:>8}{r['precision']:>10}{r['seconds']:>9}{r['docs_per_s']:>9}"
                     f"{r['docs_per_s_per_core']:>9}{r.get('worker_peak_rss_mb', float('nan')):>10.0f}MB")
    lines.append("\nper stage (ms per document, one process, batch 64):")
    for r in stage_rows:
        lines.append(f"  {r['precision']}: " + ", ".join(f"{k} {v} ms ({100 * r['share'][k]:.0f}%)"
                                                         for k, v in r["ms_per_doc"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precisions", nargs="+", default=["int8", "fp32"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows, stage_rows = [], []
    for n in args.n:
        docs = products(n, args.data)
        for precision in args.precisions:
            stage_rows.append(stages(docs[:1024], precision, "bench-ingest-stages"))
            for w in args.workers:
                print(f"ingest n={n} workers={w} {precision} ...", file=sys.stderr, flush=True)
                rows.append({"n": n, **end_to_end(docs, w, precision, f"bench-{n}-{precision}")})
    text = table(rows, stage_rows)
    args.out.write_text(json.dumps({"end_to_end": rows, "stages": stage_rows, "table": text}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
