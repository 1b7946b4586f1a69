"""Plain ``_bulk`` through the service: one stock-client bulk of N products, docs/s until written and visible.

    python -m bench.bulk [--n 512] [--repeats 3]

One worker and the service run in this process's tree (so a checkout of an older commit measures
that commit); the bulk goes in the default synchronous mode (the answer comes when the documents
are written), then ``_refresh`` and ``_count``.  Needs index deletion through the service:
``POLYSEEK_ALLOW_ADMIN_PASSTHROUGH=true``.  Prints one line per repeat and writes
``bench/results/bulk.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.corpus import products
from bench.eval_run import DEFAULT_DATA
from bench.runner import WorkerProcess, serve_in_thread
from pipelines.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    from elasticsearch import Elasticsearch

    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/results/bulk.json"))
    args = parser.parse_args(argv)

    docs = products(args.n, args.data)
    worker = WorkerProcess(args.out.parent / "bulk-worker.log", concurrency=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    worker.start()
    url, stop = serve_in_thread(get_settings())
    rates: list[float] = []
    try:
        es = Elasticsearch(url, request_timeout=600)
        for rep in range(args.repeats):
            index = f"bench-bulk-{rep}"
            es.options(ignore_status=404).indices.delete(index=index)
            ops: list[dict] = []
            for d in docs:
                ops += [{"index": {"_index": index, "_id": d["id"]}}, {k: v for k, v in d.items() if k != "id"}]
            t0 = time.perf_counter()
            answer = es.bulk(operations=ops)
            es.indices.refresh(index=index)
            visible = es.count(index=index)["count"]
            seconds = time.perf_counter() - t0
            rates.append(round(len(docs) / seconds, 1))
            print(f"repeat {rep}: errors {answer['errors']}, {visible}/{len(docs)} visible, {seconds:.1f} s, "
                  f"{rates[-1]} docs/s", flush=True)
            es.indices.delete(index=index)
    finally:
        stop()
        worker.stop()
    args.out.write_text(json.dumps({"n": args.n, "docs_per_s": rates}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
