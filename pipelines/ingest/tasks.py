"""Celery tasks of the ingest queue: validate, embed and write a batch of products."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from typing import Any, NamedTuple

from celery import Task
from celery.signals import worker_process_init

from pipelines.encoders.dense import TextEncoder, open_encoder
from pipelines.engine.client import EngineClient
from pipelines.engine.errors import EngineRequestError, EngineUnavailable
from pipelines.ingest.celery_app import app
from pipelines.ingest.documents import DocumentError, Product, engine_source, validate
from pipelines.ingest.semantic_ids import index_quantizer
from pipelines.models.semantic_ids import ResidualQuantizer
from pipelines.settings import get_settings
from pipelines.stale_vectors import stale_message

log = logging.getLogger(__name__)


def worker_encoder(model: str | None = None) -> TextEncoder:
    """The process's encoder for ``model`` (default: settings), loaded once per process and model."""
    return _load_encoder(model or get_settings().dense_model)


@cache
def _load_encoder(name: str) -> TextEncoder:
    s = get_settings()
    encoder = open_encoder(s.resolved_model_dir, name, s.encoder_precision, threads=s.encoder_threads)
    _ = encoder.fingerprint  # read (or computed, for an old card) as it loads, not on the first batch
    return encoder


@cache
def worker_engine() -> EngineClient:
    return EngineClient(get_settings(), timeout_s=60.0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def dead_letter(engine: EngineClient, index: str, task_id: str | None, rejected: list[tuple[DocumentError, Any]]) -> None:
    """Record rejected documents with the reason; raises EngineUnavailable so the batch retries."""
    if not rejected:
        return
    dl_index = get_settings().dead_letter_index
    engine.create_dead_letter_index(dl_index)
    docs = []
    for n, (err, raw) in enumerate(rejected):
        dl_id = f"{index}:{err.doc_id}" if err.doc_id else f"{index}:{task_id}:{n}"
        docs.append((dl_id, {"@timestamp": _now(), "index": index, "doc_id": err.doc_id, "task_id": task_id,
                             "stage": "validate" if err.error_type != "engine_rejected" else "index",
                             "error_type": err.error_type, "reason": err.reason,
                             "source": raw if isinstance(raw, dict) and _utf8(raw)
                             else {"raw": json.dumps(raw)[:10000]}}))
    failures = [r for r in engine.bulk_index(dl_index, docs) if not r.ok]
    if failures:
        raise EngineUnavailable(503, "unavailable_engine_exception",
                                f"dead-letter write failed: {failures[0].error}")


def _utf8(value: Any) -> bool:
    """Whether ``value`` can be written as UTF-8 JSON (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def record_status(engine: EngineClient, index: str, task_id: str, **fields: Any) -> None:
    """Upsert the per-batch status document read by ``polyseek ingest status``."""
    body = {"doc": {"task_id": task_id, "index": index, "updated_at": _now(), **fields}, "doc_as_upsert": True}
    try:
        engine.request("POST", f"/{get_settings().status_index}/_update/{task_id}", json_body=body,
                       params={"retry_on_conflict": 3})
    except (EngineUnavailable, EngineRequestError) as exc:  # status is advisory, never loses data
        log.warning("status update for %s failed: %s", task_id, exc)


def embed_products(encoder: TextEncoder, products: list[Product],
                   quantizer: ResidualQuantizer | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(id, _source)`` of each product: one encoder pass over every chunk of the batch; with
    ``quantizer`` (the index's, see :func:`index_quantizer`) each also gets its semantic-id fields."""
    s = get_settings()
    enc = encoder.encode_documents([p.embedding_text() for p in products], chunk_tokens=s.chunk_tokens,
                                   overlap=s.chunk_overlap, max_chunks=s.max_chunks)
    codes: list[dict[str, str] | None] = [None] * len(products)
    if quantizer is not None and products:
        codes = list(quantizer.fields(enc.dense, [p.lang for p in products]))
    return [(p.id, engine_source(p, enc.dense[i].tolist(), enc.sparse[i] if enc.sparse else None,
                                 encoder.model_id, enc.truncated[i], enc.chunks[i].tolist(), codes[i],
                                 fingerprint=encoder.fingerprint))
            for i, p in enumerate(products)]


class IndexEncoder(NamedTuple):
    """The encoder that embeds an index, and the index's physical indices embedded by other weights."""

    encoder: TextEncoder
    stale: dict[str, str]  # physical index -> the fingerprint it records, where not ``encoder.fingerprint``


_warned: set[tuple[str, str, str]] = set()  # (physical index, its fingerprint, the encoder's): logged once


def index_encoder(engine: EngineClient, index: str, load: Callable[[str | None], TextEncoder] = worker_encoder,
                  *, create: bool = True) -> IndexEncoder:
    """The encoder that embeds ``index``: the model its mapping records, else the default.

    A missing index is created from the products templates, stamped with that model and its
    fingerprint (unless ``create`` is false).  ``load`` maps a model name (None: the default) to an
    encoder; it raises :class:`FileNotFoundError` when the model is not in the cache.

    An index whose recorded fingerprint is not the encoder's (the model was rebuilt under its
    name: :mod:`pipelines.stale_vectors`) is still written, with the encoder's weights: refusing
    would stop the catalog's updates and lose the writes a running ``polyseek reindex`` catches up
    from it.  The mix is logged (once per index and fingerprint), counted by the caller and
    recorded per document (``model.fingerprint``).
    """
    exists = engine.index_exists(index)
    stamp = engine.index_stamp(index) if exists else None
    encoder = load(stamp.model if stamp else None)
    if not exists and create:
        engine.create_products_index(index, encoder.dims, encoder.card.name, encoder.fingerprint)
    stale = stamp.stale(encoder.fingerprint) if stamp else {}
    key = (index, ",".join(sorted(stale.values())), encoder.fingerprint)
    if stale and key not in _warned:
        _warned.add(key)
        log.warning("writing with other weights than the index's: %s",
                    stale_message(index, encoder.card.name, stale, encoder.fingerprint))
    return IndexEncoder(encoder, stale)


def process_batch(index: str, docs: list[Any], task_id: str | None = None,
                  encoder: TextEncoder | None = None, engine: EngineClient | None = None) -> dict[str, Any]:
    """Validate, embed and write ``docs`` into ``index``; returns counts and per-document errors.

    Raises :class:`EngineUnavailable` when the engine cannot take the batch (the
    task retries); documents rejected for their own reasons go to the dead-letter index.
    """
    s = get_settings()
    engine = engine or worker_engine()
    given = encoder
    # an index is embedded by one model: the one its mapping records, else the default (or the one given)
    try:
        encoder, stale = index_encoder(engine, index, (lambda _model: given) if given else worker_encoder)
        quantizer = index_quantizer(engine, index)  # semantic ids, when the index has a quantiser
    except (FileNotFoundError, LookupError) as exc:  # a deployment problem: keep every document, with the reason
        kind = "model_missing" if isinstance(exc, FileNotFoundError) else "quantizer_missing"
        missing = [(DocumentError(raw.get("_id", raw.get("id")) if isinstance(raw, dict) else None, kind, str(exc)),
                    raw) for raw in docs]
        dead_letter(engine, index, task_id, missing)
        return _batch_result(index, docs, 0, missing)
    products: list[Product] = []
    rejected: list[tuple[DocumentError, Any]] = []
    for raw in docs:
        try:
            products.append(validate(raw, max_bytes=s.max_document_bytes))
        except DocumentError as err:
            rejected.append((err, raw))
    # a document id given twice in one batch: the last one wins, as in _bulk
    unique = list({p.id: p for p in products}.values())
    written = 0
    if unique:
        results = engine.bulk_index(index, embed_products(encoder, unique, quantizer))
        retry = [r for r in results if r.retryable]
        if retry:
            raise EngineUnavailable(retry[0].status, "unavailable_engine_exception",
                                    f"{len(retry)} documents refused by the engine ({retry[0].status}): {retry[0].error}")
        by_id = {p.id: p for p in unique}
        for r in results:
            if r.ok:
                written += 1
            else:
                reason = f"{(r.error or {}).get('type')}: {(r.error or {}).get('reason')}"
                rejected.append((DocumentError(r.id, "engine_rejected", reason), by_id[r.id].source))
    dead_letter(engine, index, task_id, rejected)
    return _batch_result(index, docs, written, rejected, written if stale else 0)


def _batch_result(index: str, docs: list[Any], written: int, rejected: list[tuple[DocumentError, Any]],
                  stale_model: int = 0) -> dict:
    """The task result: counts and the per-document errors.  ``stale_model``: the documents written
    with other weights than those the index records (:func:`index_encoder`)."""
    return {"index": index, "accepted": len(docs), "indexed": written, "rejected": len(rejected),
            "stale_model": stale_model,
            "errors": [{"id": e.doc_id, "type": e.error_type, "reason": e.reason} for e, _ in rejected]}


@worker_process_init.connect
def load_worker_encoder(**_: Any) -> None:
    """A worker process loads the default encoder as it starts (after the fork), not on its first batch."""
    try:
        worker_encoder()
    except FileNotFoundError as exc:  # batches then dead-letter with model_missing, as process_batch says
        log.warning("no encoder loaded at worker start: %s", exc)


class IngestTask(Task):
    """A task of the ingest queue: its retry limit is read from the settings when it retries."""

    @property
    def max_retries(self) -> int | None:  # type: ignore[override]
        """``settings.ingest_max_retries`` (None: retry until the engine is back)."""
        return get_settings().ingest_max_retries


@app.task(bind=True, base=IngestTask, name="polyseek.index_batch", acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(EngineUnavailable,), retry_backoff=2, retry_backoff_max=60, retry_jitter=True)
def index_batch(self: Task, index: str, docs: list[Any], model: str | None = None) -> dict[str, Any]:
    """Embed and write one batch of products into ``index`` (idempotent: ``_id`` = product id).

    ``model`` names the dense encoder in the model cache (default: the model the index
    records, else settings); a reindex onto a new model passes it.
    """
    result = process_batch(index, docs, task_id=self.request.id, encoder=worker_encoder(model) if model else None)
    result["attempts"] = self.request.retries + 1  # > 1: the engine was unavailable and the batch retried
    # True: a worker died holding this batch (kill -9, OOM) and the broker handed it out again
    result["redelivered"] = bool((self.request.delivery_info or {}).get("redelivered"))
    record_status(worker_engine(), index, self.request.id, state="done",
                  **{k: result[k] for k in ("accepted", "indexed", "rejected", "stale_model")})
    return result
