"""Write paths (``_bulk``, ``_doc``, ``_create``, ``_update``) with Elasticsearch's contract.

By default a write runs synchronously: the service validates and embeds the documents with
the same steps as the ingest workers (``validate``, ``index_encoder``, ``embed_products``) and
sends one engine ``_bulk`` holding every operation of the request, in order, with the
client's own metadata and URL parameters; the items it answers are the engine's
(``_version``, ``_seq_no``, ``result``, conflicts, ``forced_refresh``).  ``update``
operations read the current document, merge the partial ``doc`` and write the re-embedded
result with ``if_seq_no``/``if_primary_term``.  With the header ``X-Polyseek-Write: queued``
plain ``index`` operations are validated here and put on the ingest queue instead (items
``202 queued``).  README "Write semantics" has the design.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from pipelines.engine.errors import EngineRequestError, EngineUnavailable, from_response
from pipelines.ingest import api as ingest
from pipelines.ingest.documents import DocumentError, kept_source, merge_partial, user_source, validate
from pipelines.schema import LANG_FIELD, product_fields
from service.errors import SearchError, bad_request, error_body

if TYPE_CHECKING:
    from service.state import Polyseek

log = logging.getLogger(__name__)

WRITE_ACTIONS = ("index", "create", "delete", "update")
QUEUED_HEADER = "x-polyseek-write"  # value "queued": plain index operations go through the ingest queue
WRITE_TIMEOUT_S = 300.0  # one engine _bulk of a write request (refresh=wait_for waits for a refresh)
# keys of an action line the engine knows (OpenSearch 2.x bulk parser)
META_KEYS = frozenset({"_index", "_id", "routing", "version", "version_type", "if_seq_no", "if_primary_term",
                       "pipeline", "require_alias", "retry_on_conflict", "_source", "op_type"})
UPDATE_BODY_KEYS = frozenset({"doc", "upsert", "doc_as_upsert", "detect_noop", "script", "scripted_upsert",
                              "_source"})
# URL parameters: sent with the engine _bulk / turned into the operation's metadata / shaping the answer
ENGINE_PARAMS = frozenset({"refresh", "timeout", "wait_for_active_shards"})
BULK_DEFAULT_PARAMS = frozenset({"routing", "require_alias", "pipeline"})
DOC_META_PARAMS = frozenset({"routing", "version", "version_type", "if_seq_no", "if_primary_term", "pipeline",
                             "require_alias"})
UPDATE_META_PARAMS = frozenset({"routing", "if_seq_no", "if_primary_term", "require_alias", "retry_on_conflict"})
FORMAT_PARAMS = frozenset({"pretty", "human", "error_trace", "filter_path"})
# accepted by Elasticsearch, refused here by name: an update's answer carries no document
UNSUPPORTED_PARAMS = frozenset({"_source", "_source_includes", "_source_excludes", "lang"})
_INT_META = ("version", "if_seq_no", "if_primary_term", "retry_on_conflict")
PENDING_WAIT_S = 60.0  # how long a read or write of a queued id waits for its batch
PENDING_PRUNE_AT = 256  # batches remembered before the finished ones are looked up and forgotten


class PendingWrites:
    """Ids this service process put on the queue whose batch it has not seen written.

    A later GET, DELETE or synchronous write of such an id, or a ``_refresh`` of its index,
    first waits (at most ``PENDING_WAIT_S``) for that batch: queued mode keeps the engine's
    real-time GET and per-id order as far as this process can see.
    """

    def __init__(self) -> None:
        self._task_of: dict[tuple[str, str], str] = {}
        self._keys_of: dict[str, set[tuple[str, str]]] = {}
        self._prune_at = PENDING_PRUNE_AT

    def __len__(self) -> int:
        return len(self._keys_of)

    def add(self, index: str, ids: list[str], task_ids: list[str], batch_size: int) -> None:
        """Remember ``ids`` (in the order they were enqueued, ``batch_size`` per task)."""
        for n, doc_id in enumerate(ids):
            task = task_ids[n // batch_size]
            key = (index, doc_id)
            self._forget_key(key)
            self._task_of[key] = task
            self._keys_of.setdefault(task, set()).add(key)

    def tasks_for(self, keys: list[tuple[str, str | None]]) -> set[str]:
        return {t for k in keys if (t := self._task_of.get(k)) is not None}  # type: ignore[arg-type]

    def tasks_of_indices(self, expression: str | None) -> set[str]:
        """Batches queued for the indices of an index expression (None: all)."""
        if not expression or expression in ("_all", "*"):
            return set(self._keys_of)
        names = expression.split(",")
        return {t for (index, _), t in self._task_of.items() if any(fnmatch.fnmatch(index, n) for n in names)}

    async def settle(self, task_ids: set[str]) -> None:
        """Wait for these batches (bounded; a failed or slow batch is logged, not raised), then forget them."""
        if not task_ids:
            return
        await run_in_threadpool(_wait_quietly, sorted(task_ids))
        for task in task_ids:
            self._forget_task(task)

    async def prune(self) -> None:
        """Forget the batches already finished once many are remembered (bounded memory; looked up
        again only when the count has doubled, so a long backlog is not scanned on every request)."""
        if len(self._keys_of) < self._prune_at:
            return
        for task in await run_in_threadpool(_finished, list(self._keys_of)):
            self._forget_task(task)
        self._prune_at = max(PENDING_PRUNE_AT, 2 * len(self._keys_of))

    def _forget_task(self, task: str) -> None:
        for key in self._keys_of.pop(task, set()):
            if self._task_of.get(key) == task:
                del self._task_of[key]

    def _forget_key(self, key: tuple[str, str]) -> None:
        task = self._task_of.pop(key, None)
        if task is not None:
            self._keys_of[task].discard(key)
            if not self._keys_of[task]:
                del self._keys_of[task]


def _wait_quietly(task_ids: list[str]) -> None:
    """Poll the result backend until the batches are done or ``PENDING_WAIT_S`` passed (no pub/sub
    consumer: safe from many threads at once); a batch not done by then is logged, not raised."""
    deadline = time.monotonic() + PENDING_WAIT_S
    left = list(task_ids)
    try:
        while left and time.monotonic() < deadline:
            done = _finished(left)
            left = [t for t in left if t not in done]
            if left:
                time.sleep(0.05)
    except Exception as exc:  # noqa: BLE001 - the read goes on and answers what the engine holds
        log.warning("queued batches %s not confirmed: %r", left[:3], exc)
        return
    if left:
        log.warning("queued batches %s not done after %.0f s", left[:3], PENDING_WAIT_S)


def _finished(task_ids: list[str]) -> set[str]:
    """The batches among ``task_ids`` that are done (written, or failed for good)."""
    from pipelines.ingest.celery_app import app

    return {t for t in task_ids if app.AsyncResult(t).ready()}


@dataclass
class BulkOp:
    """One operation of a write request, as the client sent it."""

    action: str  # index, create, delete, update
    index: str
    id: str | None
    meta: dict[str, Any] = field(default_factory=dict)  # the action line's other keys (routing, version, ...)
    source: Any = None  # the document (index/create) or the update body (update)

    @property
    def key(self) -> tuple[str, str | None]:
        return self.index, self.id


@dataclass
class WriteParams:
    """URL parameters of a write request, sorted by who uses them."""

    engine: dict[str, str] = field(default_factory=dict)  # sent with the engine _bulk
    filter_path: str | None = None
    pretty: bool = False

    @property
    def refresh(self) -> bool:
        """Whether the client asked for a refresh (``true``, ``wait_for`` or empty)."""
        return "refresh" in self.engine and self.engine["refresh"] != "false"


# --- parsing -------------------------------------------------------------------------------------

def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("", "true"))


def _check_id(doc_id: str) -> None:
    """The engine refuses a whole request holding an id over 512 bytes; so does the service."""
    size = len(doc_id.encode("utf-8", "surrogatepass"))
    if size > 512:
        raise SearchError(400, "action_request_validation_exception",
                          f"Validation Failed: 1: id [{doc_id}] is too long, must be no longer than 512 bytes "
                          f"but was: {size};")


def _check_meta(meta: dict[str, Any]) -> None:
    """The engine's request-level checks of versioning metadata, made before anything is written
    (a products index created for a request the engine then refuses would be a side effect)."""
    def invalid(reason: str) -> SearchError:
        return SearchError(400, "action_request_validation_exception", f"Validation Failed: 1: {reason};")

    if "retry_on_conflict" in meta:
        try:
            meta["retry_on_conflict"] = int(str(meta["retry_on_conflict"]))
        except ValueError:
            raise bad_request(f"[retry_on_conflict] must be an integer, got [{meta['retry_on_conflict']}]",
                              "illegal_argument_exception") from None
    version_type = meta.get("version_type")
    if version_type is not None and version_type not in ("internal", "external", "external_gte"):
        raise bad_request(f"No version type match [{version_type}]", "illegal_argument_exception")
    if "if_seq_no" in meta and "if_primary_term" not in meta:
        raise invalid("ifSeqNo is set, but primary term is [0]")
    if "if_primary_term" in meta and "if_seq_no" not in meta:
        raise invalid(f"ifSeqNo is unassigned, but primary term is [{meta['if_primary_term']}]")
    if "version" in meta and version_type in (None, "internal"):
        raise invalid("internal versioning can not be used for optimistic concurrency control. "
                      "Please use `if_seq_no` and `if_primary_term` instead")
    if version_type in ("external", "external_gte") and "version" not in meta:
        raise invalid(f"illegal version value [-3] for version type [{version_type.upper()}]")


def _check_update(meta: dict[str, Any], body: Any, line: int) -> None:
    """Refuse, for the whole request as the engine does, an update the service cannot run."""
    if "version" in meta:
        raise bad_request("Update requests do not support versioning. Please use `if_seq_no` and "
                          "`if_primary_term` instead", "illegal_argument_exception")
    if not isinstance(body, dict):
        raise bad_request(f"Malformed update body on line [{line}], expected an object", "x_content_parse_exception")
    unknown = sorted(set(body) - UPDATE_BODY_KEYS)
    if unknown:
        raise bad_request(f"[UpdateRequest] unknown field [{unknown[0]}]", "x_content_parse_exception")
    if "script" in body or body.get("scripted_upsert"):
        raise bad_request("scripted updates are not supported by this service: a script's result cannot be "
                          "re-embedded; send a partial [doc]", "illegal_argument_exception")
    if "_source" in body or "_source" in meta:
        raise bad_request("[_source] of an update is not supported by this service: the answer carries no "
                          "document", "illegal_argument_exception")
    if "doc" not in body:
        raise SearchError(400, "action_request_validation_exception", "Validation Failed: 1: script or doc is missing;")
    for key in ("doc", "upsert"):
        if key in body and not isinstance(body[key], dict):
            raise bad_request(f"[UpdateRequest] [{key}] must be an object", "x_content_parse_exception")


def parse_bulk(payload: bytes, default_index: str | None) -> list[BulkOp]:
    """The operations of a ``_bulk`` body, in order; a malformed line fails the whole request (as ES)."""
    if not payload:
        raise bad_request("request body is required", "parse_exception")
    lines = [ln for ln in payload.split(b"\n") if ln.strip()]
    if not lines:
        raise SearchError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    ops: list[BulkOp] = []
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
        if not isinstance(meta, dict):
            raise bad_request(f"Malformed action/metadata line [{i + 1}], expected START_OBJECT",
                              "illegal_argument_exception")
        unknown = sorted(set(meta) - META_KEYS)
        if unknown:
            raise bad_request(f"Action/metadata line [{i + 1}] contains an unknown parameter [{unknown[0]}]",
                              "illegal_argument_exception")
        for key in ("_index", "_id"):  # read by the service itself (the engine checks the rest)
            if isinstance(meta.get(key), (dict, list)):
                found = "START_OBJECT" if isinstance(meta[key], dict) else "START_ARRAY"
                raise bad_request(f"Malformed action/metadata line [{i + 1}], expected a simple value for field "
                                  f"[{key}] but found [{found}]", "illegal_argument_exception")
        index = meta.get("_index", default_index)
        if not index:
            raise SearchError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
        doc_id = None if meta.get("_id") is None else str(meta["_id"])
        if doc_id is not None:
            _check_id(doc_id)
        elif action in ("delete", "update"):
            raise SearchError(400, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
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
            if action == "update":
                _check_update(meta, source, i + 1)
        rest = {k: v for k, v in meta.items() if k not in ("_index", "_id")}
        _check_meta(rest)
        ops.append(BulkOp(action, str(index), doc_id, rest, source))
        i += 1
    return ops


def _meta_value(name: str, value: str) -> Any:
    """A URL parameter as the JSON value of an action line (numbers and booleans typed)."""
    if name in _INT_META:
        try:
            return int(value)
        except ValueError:
            raise bad_request(f"Failed to parse int parameter [{name}] with value [{value}]",
                              "illegal_argument_exception") from None
    if name == "require_alias":
        return _truthy(value)
    return value


def parse_params(params: QueryParams, path: str, meta_params: frozenset[str] = frozenset()) -> tuple[
        WriteParams, dict[str, Any]]:
    """Sort a write request's URL parameters; returns them and the metadata they give the operation.

    ``meta_params`` (single-document calls) become action-line keys; a ``_bulk`` passes
    ``routing``, ``require_alias`` and ``pipeline`` to the engine as defaults.  Unknown
    parameters are a 400 naming them, as in Elasticsearch.
    """
    out = WriteParams()
    meta: dict[str, Any] = {}
    for name, value in params.multi_items():
        if name in meta_params:
            meta[name] = _meta_value(name, value)
        elif name in ENGINE_PARAMS or (not meta_params and name in BULK_DEFAULT_PARAMS):
            out.engine[name] = value
        elif name == "filter_path":
            out.filter_path = value
        elif name == "pretty":
            out.pretty = value in ("", "true")
        elif name in UNSUPPORTED_PARAMS:
            raise bad_request(f"parameter [{name}] is not supported by this service on writes",
                              "illegal_argument_exception")
        elif name not in FORMAT_PARAMS:
            raise bad_request(f"request [{path}] contains unrecognized parameter: [{name}]",
                              "illegal_argument_exception")
    return out, meta


def single_op(action: str, index: str, doc_id: str | None, body: Any, params: QueryParams,
              path: str) -> tuple[BulkOp, WriteParams]:
    """The one operation of ``PUT/POST /{index}/_doc[/{id}]``, ``_create/{id}`` or ``_update/{id}``."""
    allowed = UPDATE_META_PARAMS if action == "update" else DOC_META_PARAMS
    if action == "index":
        allowed = allowed | {"op_type"}
    wp, meta = parse_params(params, path, allowed)
    op_type = meta.pop("op_type", None)
    if op_type is not None:
        if op_type not in ("create", "index"):
            raise bad_request(f"opType must be 'create' or 'index', found: [{op_type}]", "illegal_argument_exception")
        action = op_type
    if doc_id is not None:
        _check_id(doc_id)
    if action == "update":
        _check_update(meta, body, 1)
    _check_meta(meta)
    return BulkOp(action, index, doc_id, meta, body), wp


# --- answers ---------------------------------------------------------------------------------------

def _item_error(op: BulkOp, doc_id: str | None, status: int, error: dict[str, Any]) -> dict[str, Any]:
    return {op.action: {"_index": op.index, "_id": doc_id, "status": status, "error": error}}


def single_answer(item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of a single-document call from its bulk item (errors in ES shape)."""
    (body,) = item.values()
    status = body.get("status", 200)
    if "error" in body:
        err = dict(body["error"])
        err_type, reason = err.pop("type", "exception"), err.pop("reason", "")
        return status, error_body(status, err_type, reason, **err)
    if body.get("result") == "queued":
        return 202, {k: body[k] for k in ("_index", "_id", "result")}
    if body.get("result") == "noop":  # the engine's _update answers a noop without shards or refresh
        body = {k: v for k, v in body.items() if k != "forced_refresh"} | {
            "_shards": {"total": 0, "successful": 0, "failed": 0}}
    return status, {k: v for k, v in body.items() if k != "status"}


# --- the request ------------------------------------------------------------------------------------

async def execute(ps: Polyseek, ops: list[BulkOp], wp: WriteParams, path_index: str | None,
                  queued: bool) -> dict[str, Any]:
    """Run a write request; the ``_bulk`` answer with one item per operation, in order."""
    started = time.perf_counter()
    items: list[dict[str, Any] | None] = [None] * len(ops)
    positions = list(range(len(ops)))
    if queued and not wp.refresh:
        positions = await _enqueue(ps, ops, wp, items)
    await ps.pending.settle(ps.pending.tasks_for([ops[p].key for p in positions]))  # per-id order
    for segment in _segments(ops, positions):
        await _run_segment(ps, ops, segment, wp, path_index, items, {})
    errors = any("error" in body for item in items if item for body in item.values())
    return {"took": int((time.perf_counter() - started) * 1000), "errors": errors, "items": items}


def _segments(ops: list[BulkOp], positions: list[int]) -> list[list[int]]:
    """Runs of operations sent in one engine ``_bulk``: a new run starts at an ``update`` of a
    document an earlier operation of the run wrote, so that it reads what that wrote."""
    out: list[list[int]] = []
    current: list[int] = []
    touched: set[tuple[str, str | None]] = set()
    for pos in positions:
        op = ops[pos]
        if op.action == "update" and op.key in touched:
            out.append(current)
            current, touched = [], set()
        current.append(pos)
        if op.id is not None:
            touched.add(op.key)
    if current:
        out.append(current)
    return out


def _doc_with_id(doc_id: str | None, source: Any) -> tuple[str, Any]:
    """The document's id (given, else the document's own ``id``, else a new one) and the document
    to validate: the client's own fields untouched, the id under ``_id`` (``validate`` takes it
    from there and keeps the rest as the document sent)."""
    if not isinstance(source, dict):
        return doc_id or uuid.uuid4().hex, source
    if doc_id is None:
        own = source.get("id")
        doc_id = uuid.uuid4().hex if own in (None, "") else str(own)
    return doc_id, {**source, "_id": doc_id}


@dataclass
class _Write:
    """What one operation sends to the engine: action, metadata and the document to embed (deletes have none;
    a document may be any JSON value, ``null`` included: validation answers it)."""

    action: str
    meta: dict[str, Any]
    doc: Any = None

    @property
    def has_doc(self) -> bool:
        return self.action != "delete"
    from_read: bool = False  # an update whose if_seq_no comes from the service's own read (retryable)


async def _run_segment(ps: Polyseek, ops: list[BulkOp], segment: list[int], wp: WriteParams,
                       path_index: str | None, items: list, attempts: dict[int, int]) -> None:
    """Plan, embed and send one run of operations; fills their items."""
    writes: dict[int, _Write] = {}
    updates = [p for p in segment if ops[p].action == "update"]
    if updates:
        current = await _read_current(ps, [ops[p] for p in updates], wp)
        for pos, doc in zip(updates, current):
            planned = _plan_update(ops[pos], doc, wp.engine.get("refresh") in ("", "true"))
            if isinstance(planned, _Write):
                writes[pos] = planned
            else:
                items[pos] = planned
    for pos in segment:
        op = ops[pos]
        if op.action == "delete":
            writes[pos] = _Write("delete", {"_index": op.index, "_id": op.id, **op.meta})
        elif op.action in ("index", "create"):
            if op.id == "":
                items[pos] = _item_error(op, "", 400, {"type": "illegal_argument_exception",
                                                       "reason": "if _id is specified it must not be empty"})
                continue
            doc_id, doc = _doc_with_id(op.id, op.source)
            writes[pos] = _Write(op.action, {"_index": op.index, "_id": doc_id, **op.meta}, doc)
    jobs = {pos: (ops[pos].index, w.doc, not _truthy(w.meta.get("require_alias", wp.engine.get("require_alias",
                                                                                                 False))))
            for pos, w in writes.items() if w.has_doc}
    embedded = await run_in_threadpool(_embed, ps, jobs) if jobs else {}
    sent: list[int] = []
    lines: list[bytes] = []
    for pos in segment:
        w = writes.get(pos)
        if w is None:
            continue
        if w.has_doc:
            src = embedded[pos]
            if isinstance(src, _Failed):
                items[pos] = _item_error(ops[pos], w.meta.get("_id"), src.status, src.error)
                continue
            lines += [_line({w.action: w.meta}), _line(src)]
        else:
            lines.append(_line({w.action: w.meta}))
        sent.append(pos)
    if not sent:
        return
    path = f"/{path_index}/_bulk" if path_index else "/_bulk"
    resp = await ps.engine.request("POST", path, params=wp.engine or None, content=b"\n".join(lines) + b"\n",
                                   timeout_s=WRITE_TIMEOUT_S)
    data = resp.json() or {}
    if resp.status >= 400 or not isinstance(data, dict) or "items" not in data:
        raise from_response(resp.status, data)
    retry = []
    last_of = {ops[p].key: p for p in segment}
    for pos, item in zip(sent, data["items"]):
        (engine_action, body), = item.items()
        items[pos] = {"update" if ops[pos].action == "update" else engine_action: body}
        limit = ops[pos].meta.get("retry_on_conflict", 0)
        if (body.get("status") == 409 and writes[pos].from_read and attempts.get(pos, 0) < limit
                and last_of[ops[pos].key] == pos):
            retry.append(pos)
    if retry:
        for pos in retry:
            attempts[pos] = attempts.get(pos, 0) + 1
        await _run_segment(ps, ops, retry, wp, path_index, items, attempts)


def _line(value: Any) -> bytes:
    """One NDJSON line for the engine: UTF-8, or ASCII escapes where the text holds lone surrogates."""
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value).encode("ascii")


# --- updates ------------------------------------------------------------------------------------------

async def _read_current(ps: Polyseek, ops: list[BulkOp], wp: WriteParams) -> list[dict[str, Any]]:
    """The engine's real-time view of each updated document (``_mget``, with its routing)."""
    docs = []
    for op in ops:
        routing = op.meta.get("routing", wp.engine.get("routing"))
        docs.append({"_index": op.index, "_id": op.id, **({"routing": routing} if routing is not None else {})})
    data = await ps.engine.json("POST", "/_mget", {"docs": docs}, timeout_s=WRITE_TIMEOUT_S)
    return data["docs"]


def _plan_update(op: BulkOp, current: dict[str, Any], forced_refresh: bool) -> _Write | dict[str, Any]:
    """The write an update becomes (merged document, guarded by what was read), or its item.

    An unchanged document is a ``noop`` item, shaped as the engine's bulk answers it
    (``forced_refresh`` with ``refresh=true``; a single ``_update`` reshapes it).
    """
    body = op.source
    carried = {k: v for k, v in op.meta.items() if k in ("routing", "require_alias", "if_seq_no", "if_primary_term")}
    error = current.get("error")
    if error and error.get("type") != "index_not_found_exception":  # e.g. an alias of several indices
        return _item_error(op, op.id, 400, error)
    if not current.get("found"):
        upsert = body["doc"] if body.get("doc_as_upsert") else body.get("upsert")
        if upsert is None:
            return _item_error(op, op.id, 404, {"type": "document_missing_exception",
                                                "reason": f"[{op.id}]: document missing", "index": op.index})
        carried = {k: v for k, v in carried.items() if k not in ("if_seq_no", "if_primary_term")}
        return _Write("create", {"_index": op.index, "_id": op.id, **carried}, _doc_with_id(op.id, upsert)[1])
    before = user_source(current.get("_source") or {})
    merged = merge_partial(before, body["doc"])
    if body.get("detect_noop", True) is not False and merged == before:
        return {"update": {"_index": current["_index"], "_id": op.id, "_version": current["_version"],
                           "result": "noop", **({"forced_refresh": True} if forced_refresh else {}),
                           "_shards": {"total": 1, "successful": 1, "failed": 0},
                           "_seq_no": current["_seq_no"], "_primary_term": current["_primary_term"], "status": 200}}
    if (kept_source(current.get("_source") or {}) is None and LANG_FIELD not in body["doc"]
            and any(f in body["doc"] for f in product_fields().per_language_fields)):
        merged.pop(LANG_FIELD, None)  # a document from before the sent record: its lang may be derived, detect again
    from_read = "if_seq_no" not in carried
    if from_read:
        carried |= {"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]}
    return _Write("index", {"_index": op.index, "_id": op.id, **carried}, _doc_with_id(op.id, merged)[1],
                  from_read=from_read)


# --- embedding ----------------------------------------------------------------------------------------

@dataclass
class _Failed:
    """An operation answered without the engine: its item status and error."""

    status: int
    error: dict[str, Any]


def _embed(ps: Polyseek, jobs: dict[int, tuple[str, Any, bool]]) -> dict[int, dict[str, Any] | _Failed]:
    """The engine ``_source`` of each document (validated and embedded with its index's model), or why not.

    ``jobs``: position -> (index, document, whether a missing index may be created).  Runs in a
    worker thread: it calls the engine synchronously and runs the encoder.
    """
    from pipelines.ingest import semantic_ids, tasks

    by_index: dict[str, list[tuple[int, Any, bool]]] = defaultdict(list)
    for pos, (index, doc, create) in jobs.items():
        by_index[index].append((pos, doc, create))
    out: dict[int, dict[str, Any] | _Failed] = {}
    try:
        for index, docs in by_index.items():
            try:
                encoder, _ = tasks.index_encoder(ps.engine_client, index, ps.dense, create=any(c for _, _, c in docs))
                quantizer = semantic_ids.index_quantizer(ps.engine_client, index)
            except LookupError as exc:  # the index names a quantiser that is not stored
                for pos, _, _ in docs:
                    out[pos] = _Failed(500, {"type": "quantizer_missing", "reason": str(exc)})
                continue
            except EngineRequestError as exc:  # e.g. an invalid index name: each item says so
                err = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
                err = {k: v for k, v in err.items() if k != "root_cause"} if isinstance(err, dict) else {}
                for pos, _, _ in docs:
                    out[pos] = _Failed(exc.status, err or {"type": "engine_exception", "reason": str(exc)})
                continue
            valid = []
            for pos, doc, _ in docs:
                try:
                    valid.append((pos, validate(doc, max_bytes=ps.settings.max_document_bytes)))
                except DocumentError as err:
                    out[pos] = _Failed(400, {"type": err.error_type, "reason": err.reason})
            if valid:
                sources = tasks.embed_products(encoder, [p for _, p in valid], quantizer)
                for (pos, _), (_, src) in zip(valid, sources):
                    out[pos] = src
    except EngineUnavailable as exc:
        raise SearchError(503, "unavailable_engine_exception", f"engine unavailable: {exc}") from exc
    return out


# --- queued mode ----------------------------------------------------------------------------------------

def _queueable(op: BulkOp) -> bool:
    """A plain ``index`` operation: nothing in it needs the engine's answer."""
    return op.action == "index" and not op.meta and op.id != ""


async def _enqueue(ps: Polyseek, ops: list[BulkOp], wp: WriteParams, items: list) -> list[int]:
    """Validate and queue the plain ``index`` operations; the positions left to run synchronously.

    An id that another kind of operation of the request touches stays synchronous, in order.
    """
    needs_engine = any(k in wp.engine for k in BULK_DEFAULT_PARAMS)
    sync_keys = {op.key for op in ops if not _queueable(op)}
    queued = [pos for pos, op in enumerate(ops) if not needs_engine and _queueable(op) and op.key not in sync_keys]
    if not queued:
        return list(range(len(ops)))
    docs = {pos: _doc_with_id(ops[pos].id, ops[pos].source) for pos in queued}
    problems = await run_in_threadpool(_validate_all, ps, {pos: doc for pos, (_, doc) in docs.items()})
    targets = {ops[pos].index for pos in queued}
    unwritable = {index: err for index in targets if (err := await _write_target_problem(ps, index))}
    for pos in queued:
        if ops[pos].index in unwritable:
            problems[pos] = unwritable[ops[pos].index]
    per_index: dict[str, dict[str, Any]] = defaultdict(dict)  # index -> id -> document (the last one wins)
    for pos in queued:
        op, (doc_id, doc) = ops[pos], docs[pos]
        if pos in problems:
            items[pos] = _item_error(op, doc_id, 400, problems[pos])
            continue
        per_index[op.index].pop(doc_id, None)
        per_index[op.index][doc_id] = doc
        items[pos] = {"index": {"_index": op.index, "_id": doc_id, "status": 202, "result": "queued"}}
    await ps.pending.settle(ps.pending.tasks_for([k for index, by_id in per_index.items() for k in
                                                  ((index, i) for i in by_id)]))  # one order per id
    await ps.pending.prune()
    for index, by_id in per_index.items():
        try:
            task_ids = await run_in_threadpool(ingest.enqueue, index, list(by_id.values()), ps.settings)
        except Exception as exc:  # noqa: BLE001 - broker down: nothing was accepted, the client retries
            raise SearchError(503, "unavailable_queue_exception", f"ingest queue unavailable: {exc!r}") from exc
        ps.pending.add(index, list(by_id), task_ids, ps.settings.ingest_batch_size)
    queued_set = set(queued)
    return [pos for pos in range(len(ops)) if pos not in queued_set]


_INVALID_INDEX_CHARS = '\\/*?"<>| ,#:'


async def _write_target_problem(ps: Polyseek, index: str) -> dict[str, str] | None:
    """Why the engine would refuse to write into ``index`` (a bad name, an alias without a write
    index), checked before queueing, or None."""
    if (index != index.lower() or index in (".", "..") or index.startswith(("_", "-", "+"))
            or any(c in index for c in _INVALID_INDEX_CHARS) or len(index.encode()) > 255):
        return {"type": "invalid_index_name_exception",
                "reason": f"Invalid index name [{index}], must be lowercase, at most 255 bytes, not start with "
                          f"'_', '-' or '+' and contain none of {_INVALID_INDEX_CHARS!r}"}
    resp = await ps.engine.request("GET", f"/_alias/{index}")
    if resp.status != 200:
        return None  # no alias of that name: an index, made on first use
    behind = [(name, body["aliases"][index]) for name, body in resp.json().items()
              if isinstance(body, dict) and index in body.get("aliases", {})]
    if any(meta.get("is_write_index") for _, meta in behind) or (
            len(behind) == 1 and behind[0][1].get("is_write_index") is not False):
        return None
    return {"type": "illegal_argument_exception",
            "reason": f"no write index is defined for alias [{index}]. The write index may be explicitly disabled "
                      "using is_write_index=false or the alias points to multiple indices without one being "
                      "designated as a write index"}


def _validate_all(ps: Polyseek, docs: dict[int, Any]) -> dict[int, dict[str, str]]:
    """The error of each document the workers would refuse, by position."""
    out = {}
    for pos, doc in docs.items():
        try:
            validate(doc, max_bytes=ps.settings.max_document_bytes)
        except DocumentError as err:
            out[pos] = {"type": err.error_type, "reason": err.reason}
    return out
