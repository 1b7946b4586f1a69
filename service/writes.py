"""Write paths (``_bulk``, ``_doc``, ``_create``) that go through the ingest queue.

Documents are enqueued (embedding happens in the workers) and the answer keeps
Elasticsearch's bulk/doc shape.  Items report ``status`` 202 and ``result``
``"queued"`` unless the request asked for ``refresh=wait_for``/``true``: then the
service waits for the workers and reports each document's real outcome.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from typing import Any

from starlette.concurrency import run_in_threadpool

from pipelines.ingest import api as ingest
from service.engine_proxy import AsyncEngine
from service.errors import SearchError, bad_request

WRITE_ACTIONS = ("index", "create", "delete", "update")


def parse_bulk(payload: bytes, default_index: str | None) -> list[tuple[str, str, str | None, Any]]:
    """``(action, index, id, source)`` for each bulk operation, in order."""
    lines = [ln for ln in payload.split(b"\n") if ln.strip()]
    ops: list[tuple[str, str, str | None, dict | None]] = []
    i = 0
    while i < len(lines):
        try:
            action_line = json.loads(lines[i])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_request(f"Malformed action/metadata line [{i + 1}]: {exc}", "illegal_argument_exception") from exc
        if not isinstance(action_line, dict) or len(action_line) != 1:
            raise bad_request(f"Malformed action/metadata line [{i + 1}], expected a single action",
                              "illegal_argument_exception")
        (action, meta), = action_line.items()
        if action not in WRITE_ACTIONS:
            raise bad_request(f"Malformed action/metadata line [{i + 1}], unknown action [{action}]",
                              "illegal_argument_exception")
        index = meta.get("_index", default_index)
        if not index:
            raise SearchError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
        doc_id = meta.get("_id")
        source = None
        if action != "delete":
            i += 1
            if i >= len(lines):
                raise bad_request(f"bulk action [{action}] on line [{i}] has no source line",
                                  "illegal_argument_exception")
            try:
                source = json.loads(lines[i])
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise bad_request(f"Malformed source line [{i + 1}]: {exc}", "parse_exception") from exc
        ops.append((action, index, None if doc_id is None else str(doc_id), source))
        i += 1
    return ops


def _doc_with_id(doc_id: str | None, source: Any) -> tuple[str, Any]:
    if not isinstance(source, dict):
        return doc_id or uuid.uuid4().hex, source
    doc = dict(source)
    if doc_id is not None:
        doc["id"] = doc_id
    elif doc.get("id") in (None, ""):
        doc["id"] = uuid.uuid4().hex
    return str(doc["id"]), doc


BulkOp = tuple[str, str, str | None, dict | None]


async def bulk(engine: AsyncEngine, ops: list[BulkOp], wait: bool) -> dict[str, Any]:
    """Enqueue index/create operations, run deletes on the engine, answer like ``_bulk``."""
    started = time.perf_counter()
    items: list[dict[str, Any]] = []
    per_index: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for n, (action, index, doc_id, source) in enumerate(ops):
        if action == "update":
            items.append({action: {"_index": index, "_id": doc_id, "status": 400, "error": {
                "type": "illegal_argument_exception",
                "reason": "partial updates are not supported: send the whole document with [index]"}}})
            continue
        if action == "delete":
            resp = await engine.send("DELETE", f"/{index}/_doc/{doc_id}")
            items.append({"delete": {"_index": index, "_id": doc_id, **_strip(resp.json())}})
            continue
        doc_id, doc = _doc_with_id(doc_id, source)
        items.append({action: {"_index": index, "_id": doc_id, "_version": 1, "result": "queued", "status": 202}})
        per_index[index].append((n, doc))
    tasks: dict[str, list[str]] = {}
    for index, docs in per_index.items():
        tasks[index] = await run_in_threadpool(ingest.enqueue, index, [d for _, d in docs])
        for n, _ in docs:
            (body,) = items[n].values()
            body["_polyseek_tasks"] = len(tasks[index])
    if wait:
        await _wait_and_report(engine, tasks, per_index, items)
    errors = any("error" in next(iter(it.values())) for it in items)
    return {"took": int((time.perf_counter() - started) * 1000), "errors": errors, "items": items}


def _strip(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k in ("_version", "result", "status", "error", "_shards")} | \
        {"status": 200 if resp.get("result") == "deleted" else 404}


async def _wait_and_report(engine: AsyncEngine, tasks: dict[str, list[str]],
                           per_index: dict[str, list[tuple[int, Any]]], items: list[dict]) -> None:
    for index, task_ids in tasks.items():
        results = await run_in_threadpool(ingest.wait, task_ids)
        errors = {e["id"]: e for r in results for e in r["errors"] if e.get("id")}
        anonymous = [e for r in results for e in r["errors"] if not e.get("id")]
        await engine.send("POST", f"/{index}/_refresh")
        for n, doc in per_index[index]:
            (body,) = items[n].values()
            doc_id = body["_id"]
            err = errors.get(doc_id)
            if err is None and not isinstance(doc, dict) and anonymous:
                err = anonymous.pop(0)
            if err:
                body.update(status=400, error={"type": err["type"], "reason": err["reason"]})
                body.pop("result", None)
            else:
                body.update(status=201, result="created")
