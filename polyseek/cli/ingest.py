"""``polyseek worker|ingest|reindex``: the ingest queue's worker, enqueueing a catalog, re-embedding an index."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.settings import get_settings


def _worker(args: argparse.Namespace) -> int:
    from pipelines.ingest.celery_app import app

    argv = ["worker", "--loglevel", args.loglevel, "--concurrency", str(args.concurrency),
            "--pool", "solo" if args.concurrency == 1 else "prefork"]
    app.worker_main(argv)
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from pipelines.ingest import api

    if args.file == "status":
        print(json.dumps(api.ingest_status(args.index), indent=2))
        return 0
    report = api.ingest_file(Path(args.file), args.index)
    summary = {"accepted": report.accepted, "batches": len(report.task_ids), "unreadable": len(report.rejected)}
    if args.wait:
        results = api.wait(report.task_ids, timeout_s=args.timeout)
        summary["indexed"] = sum(r["indexed"] for r in results)
        summary["rejected"] = sum(r["rejected"] for r in results)
        summary["errors"] = [e for r in results for e in r["errors"]][:20]
        summary |= _near_duplicates_summary(args.index)
    summary["unreadable_lines"] = report.rejected[:20]
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def _near_duplicates_summary(index: str) -> dict:
    """After an ingest: near-duplicate pairs of an index with semantic ids (none without)."""
    from pipelines.engine.client import EngineClient
    from pipelines.ingest import semantic_ids

    with EngineClient(get_settings(), timeout_s=60.0) as engine:
        if semantic_ids.index_quantizer(engine, index) is None:
            return {}
        engine.refresh(index)
        pairs = semantic_ids.near_duplicates(engine, index)
    return {"near_duplicates": len(pairs), "near_duplicate_pairs": [p.as_dict() for p in pairs[:20]]}


def _reindex(args: argparse.Namespace) -> int:
    from pipelines.ingest.reindex import ReindexError, reindex

    if args.check:
        return _check_vectors(args.index or "_all")
    if not args.index or not args.model:
        print("reindex needs INDEX and --model (or --check)", file=sys.stderr)
        return 2
    try:
        report = reindex(args.index, args.model, keep_old=args.keep_old, timeout_s=args.timeout)
    except (ReindexError, FileNotFoundError) as exc:
        print(f"reindex failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    return 0


def _check_vectors(expression: str) -> int:
    """``polyseek reindex --check [INDEX]``: products indices whose vectors are not the cache's model's
    (exit 1 when one needs a reindex)."""
    from pipelines.engine.client import EngineClient
    from pipelines.engine.errors import EngineRequestError
    from pipelines.stale_vectors import check_indices

    settings = get_settings()
    try:
        with EngineClient(settings) as engine:
            checks = check_indices(engine, settings.resolved_model_dir, expression)
    except EngineRequestError as exc:
        print(f"reindex --check failed: {exc}", file=sys.stderr)
        return 1
    print(f"{'index':<40} {'model':<24} {'state':<13} {'recorded':<16} {'loaded':<16} documents by fingerprint")
    for c in checks:
        print(f"{c.index:<40} {c.model:<24} {c.state:<13} {c.recorded or '-':<16} {c.loaded or '-':<16} "
              f"{json.dumps(c.documents)}")
    stale = [c for c in checks if c.needs_reindex]
    for c in stale:
        print(f"fix: polyseek reindex {c.searched_as} --model {c.model}")
    return 1 if stale else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``worker``, ``ingest``, ``reindex`` on the ``polyseek`` parser."""
    p = sub.add_parser("worker", help="run an ingest worker (Celery)")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=_worker)
    p = sub.add_parser("ingest", help="enqueue a JSONL/CSV/Parquet file, or `ingest status`")
    p.add_argument("file", help="path, or 'status'")
    p.add_argument("--index", help="target index (status: filter)")
    p.add_argument("--wait", action="store_true", help="wait until the workers have written everything")
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(func=_ingest)
    p = sub.add_parser("reindex", help="re-embed an index with another model behind its alias (zero downtime); "
                                       "--check: list the indices whose vectors are stale")
    p.add_argument("index", nargs="?", help="the alias (or the index created on first use) clients search "
                                            "(--check: the indices to check, default all)")
    p.add_argument("--model", help="dense model name in the model cache")
    p.add_argument("--check", action="store_true",
                   help="report products indices embedded by other weights than the cache's model of their name "
                        "(a model rebuilt under the same name); exit 1 when one needs a reindex")
    p.add_argument("--keep-old", action="store_true", help="keep the previous physical index")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.set_defaults(func=_reindex)
