"""Putting documents on the ingest queue: the Python API behind ``polyseek ingest`` and ``_bulk``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipelines.engine.client import EngineClient
from pipelines.engine.errors import EngineRequestError, EngineUnavailable
from pipelines.settings import Settings, get_settings


@dataclass
class EnqueueReport:
    """What ``ingest`` accepted onto the queue and what it refused while reading."""

    task_ids: list[str] = field(default_factory=list)
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"line": n, "reason": ...}


def enqueue(index: str, docs: list[Any], settings: Settings | None = None, *, model: str | None = None) -> list[str]:
    """Put ``docs`` on the queue in batches; returns one Celery task id per batch.

    ``model``: the dense model to embed with (default: the one the index records, else settings).
    """
    from pipelines.ingest.tasks import index_batch

    s = settings or get_settings()
    ids = []
    for start in range(0, len(docs), s.ingest_batch_size):
        ids.append(index_batch.delay(index, docs[start:start + s.ingest_batch_size], model).id)
    _record_queued(index, ids, [min(s.ingest_batch_size, len(docs) - i) for i in range(0, len(docs), s.ingest_batch_size)], s)
    return ids


def _record_queued(index: str, task_ids: list[str], sizes: list[int], s: Settings) -> None:
    if not task_ids:
        return
    try:
        with EngineClient(s, timeout_s=10) as engine:
            lines = []
            for tid, size in zip(task_ids, sizes):
                lines.append(json.dumps({"update": {"_index": s.status_index, "_id": tid}}))
                lines.append(json.dumps({"doc": {"task_id": tid, "index": index, "queued": size},
                                         "doc_as_upsert": True}))
            engine.request("POST", "/_bulk", content=("\n".join(lines) + "\n").encode())
    except (EngineUnavailable, EngineRequestError):
        pass  # advisory: the queue holds the documents


def wait(task_ids: Iterable[str], timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """Block until the batches are written; their results in order.

    Written is not yet searchable: as with any write to the engine, a search sees the documents
    after the index's next refresh (every second by default) or an explicit ``_refresh``.
    """
    from pipelines.ingest.celery_app import app

    return [app.AsyncResult(tid).get(timeout=timeout_s) for tid in task_ids]


def ingest_status(index: str | None = None, settings: Settings | None = None) -> dict[str, dict[str, int]]:
    """Per index: documents queued, indexed, rejected, batches pending, from the status index; and the
    documents written with other weights than those the index records (``stale_model``:
    :mod:`pipelines.stale_vectors`)."""
    s = settings or get_settings()
    query = {"term": {"index.keyword": index}} if index else {"match_all": {}}
    body = {"size": 0, "query": query, "aggs": {"by_index": {"terms": {"field": "index.keyword", "size": 1000}, "aggs": {
        "queued": {"sum": {"field": "queued"}}, "indexed": {"sum": {"field": "indexed"}},
        "rejected": {"sum": {"field": "rejected"}}, "stale_model": {"sum": {"field": "stale_model"}},
        "done": {"filter": {"term": {"state.keyword": "done"}}}}}}}
    with EngineClient(s) as engine:
        if not engine.index_exists(s.status_index):
            return {}
        engine.refresh(s.status_index)
        resp = engine.search(s.status_index, body)
    out = {}
    for b in resp["aggregations"]["by_index"]["buckets"]:
        out[b["key"]] = {"batches": b["doc_count"], "batches_done": b["done"]["doc_count"],
                         "queued": int(b["queued"]["value"]), "indexed": int(b["indexed"]["value"]),
                         "rejected": int(b["rejected"]["value"]), "stale_model": int(b["stale_model"]["value"])}
    return out


def read_documents(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """``(line_or_row, document, error)`` from JSONL, CSV or Parquet; bad lines carry an error."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise RuntimeError("Parquet ingest needs pyarrow: pip install 'polyseek[parquet]'") from exc

        for n, row in enumerate(pq.read_table(path).to_pylist(), 1):
            yield n, row, None
        return
    with path.open("rb") as fh:
        if suffix == ".csv":
            text = io.TextIOWrapper(fh, encoding="utf-8", errors="strict", newline="")
            try:
                for n, row in enumerate(csv.DictReader(text), 2):
                    yield n, {k: v for k, v in row.items() if v not in (None, "")}, None
            except UnicodeDecodeError as exc:
                yield -1, None, f"invalid UTF-8: {exc}"
            return
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw.decode("utf-8")), None
            except UnicodeDecodeError as exc:
                yield n, None, f"invalid UTF-8: {exc.reason} at byte {exc.start}"
            except json.JSONDecodeError as exc:
                yield n, None, f"malformed JSON: {exc.msg} at column {exc.colno}"


def ingest_file(path: Path, index: str, settings: Settings | None = None) -> EnqueueReport:
    """Read ``path`` and enqueue every parseable document, with a progress bar."""
    s = settings or get_settings()
    report = EnqueueReport()
    batch: list[Any] = []
    for line, doc, error in tqdm(read_documents(path), desc=f"enqueue {path.name}", unit="doc"):
        if error:
            report.rejected.append({"line": line, "reason": error})
            continue
        batch.append(doc)
        if len(batch) >= s.ingest_batch_size:
            report.task_ids += enqueue(index, batch, s)
            report.accepted += len(batch)
            batch = []
    if batch:
        report.task_ids += enqueue(index, batch, s)
        report.accepted += len(batch)
    _dead_letter_unreadable(index, path, report.rejected, s)
    return report


def _dead_letter_unreadable(index: str, path: Path, rejected: list[dict[str, Any]], s: Settings) -> None:
    """Lines that never reached the queue are recorded too, with file and line."""
    from pipelines.ingest.documents import DocumentError
    from pipelines.ingest.tasks import dead_letter

    if not rejected:
        return
    errors = [(DocumentError(None, "parse_exception", f"{path.name} line {r['line']}: {r['reason']}"),
               {"file": str(path), "line": r["line"]}) for r in rejected]
    with EngineClient(s) as engine:
        dead_letter(engine, index, f"file:{path.name}", errors)
