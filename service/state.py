"""Process-wide state of the query service: the engine transport, the dialect, the models (loaded on first
use), the index models, the query-log writes and the writes queued by this process (:class:`Polyseek`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool

from pipelines.encoders.cross import CrossEncoder, open_cross_encoder
from pipelines.encoders.dense import TextEncoder, open_encoder
from pipelines.engine.breaker import CircuitBreaker
from pipelines.engine.client import EngineClient
from pipelines.engine.dialect import dialect_for
from pipelines.engine.errors import EngineError
from pipelines.engine.transport import AsyncEngine
from pipelines.models.card import model_paths
from pipelines.schema import detect_language
from pipelines.settings import Settings
from pipelines.stale_vectors import stale_indices, stale_message
from service import index_models
from service import search as search_mod
from service import writes
from service.errors import SearchError
from service.log_indices import log_indices
from service.retrievers import SearchContext

log = logging.getLogger(__name__)
HEALTH_ENGINE_TIMEOUT_S = 3.0


class Polyseek:
    """Process-wide state of the service: engine transport, dialect, models (loaded on first use)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = AsyncEngine(settings.engine_url, timeout_s=settings.stage_timeout_s)
        # the background query-log writes share the node pool but not the breaker: their failures
        # never open the circuit for searches (nor do searches' failures stop the log)
        self.log_engine = self.engine.options(breaker=CircuitBreaker())
        self.dialect = dialect_for(settings.engine)
        self._dense: dict[str, TextEncoder] = {}
        self._cross: dict[str, CrossEncoder] = {}
        self._log_tasks: set[asyncio.Task] = set()
        self._engine_client: EngineClient | None = None
        self.pending = writes.PendingWrites()
        self.index_models = index_models.IndexModels(self.engine, ttl_s=settings.index_model_ttl_s,
                                                     timeout_s=settings.stage_timeout_s)
        self._stale_logged: set[str] = set()  # stale-vector messages logged by this process

    @property
    def engine_client(self) -> EngineClient:
        """A synchronous engine client for work done in worker threads (embedding writes)."""
        if self._engine_client is None:
            self._engine_client = EngineClient(self.settings, timeout_s=writes.WRITE_TIMEOUT_S)
        return self._engine_client

    async def close(self) -> None:
        await self.engine.close()
        if self._engine_client is not None:
            self._engine_client.close()

    def _dense_name(self, model_id: str | None) -> str:
        return (model_id or self.settings.dense_model).split("@")[0].split("+")[0]

    def has_sparse(self, model_id: str | None) -> bool:
        """Whether the dense model ``model_id`` has a learned sparse head, from its card: nothing is
        loaded, so a search that embeds nothing (BM25 only) needs no model on disk (none: no head)."""
        name = self._dense_name(model_id)
        if name in self._dense:
            return self._dense[name].has_sparse
        try:
            return model_paths(self.settings.resolved_model_dir, name).read_card().has_sparse_head
        except FileNotFoundError:
            return False

    def dense(self, model_id: str | None) -> TextEncoder:
        """The dense encoder named ``model_id`` (default: settings.dense_model), loaded on first use."""
        name = self._dense_name(model_id)
        if name not in self._dense:
            try:
                self._dense[name] = open_encoder(self.settings.resolved_model_dir, name,
                                                 self.settings.encoder_precision, threads=self.settings.encoder_threads)
            except FileNotFoundError as exc:
                raise SearchError(404, "resource_not_found_exception",
                                  f"Could not find model [{name}]: {exc}") from exc
            _ = self._dense[name].fingerprint  # read (or computed, for an old card) as it loads, off the loop
        return self._dense[name]

    def cross(self, model_id: str | None) -> CrossEncoder:
        name = model_id or self.settings.reranker_model
        if not name:
            raise SearchError(400, "illegal_argument_exception",
                              "no reranker configured: give [inference_id] or set POLYSEEK_RERANKER_MODEL")
        if name not in self._cross:
            try:
                self._cross[name] = open_cross_encoder(self.settings.resolved_model_dir, name,
                                                       self.settings.encoder_precision)
            except (FileNotFoundError, ValueError) as exc:
                raise SearchError(404, "resource_not_found_exception",
                                  f"Could not find inference endpoint [{name}]: {exc}") from exc
        return self._cross[name]

    def hybrid_defaults(self, model: str | None) -> dict[str, Any]:
        """Defaults of the hybrid shorthand for an index embedded by ``model``."""
        s = self.settings
        return {"fields": s.hybrid_fields, "rank_window_size": s.rank_window_size, "rank_constant": s.rrf_rank_constant,
                "rerank": bool(s.reranker_model), "rerank_field": s.rerank_field, "rerank_window": s.rerank_window,
                "sparse": self.has_sparse(model), "fusion": s.hybrid_fusion, "weights": s.hybrid_weights,
                "normalizer": s.hybrid_normalizer, "gate_k": s.hybrid_gate_k, "gate_margin": s.hybrid_gate_margin,
                "within_knn": s.hybrid_within_knn, "exact_field": s.hybrid_exact_field,
                "num_candidates": s.hybrid_num_candidates}

    def context(self, index: str, model: str | None,
                embedded: dict[str, TextEncoder] | None = None) -> tuple[SearchContext, dict[str, Any]]:
        """A search context for ``index`` embedded by ``model`` and the hybrid defaults of the model.
        ``embedded``: receives the encoders that embed the search's queries, by name."""
        def encode_query(text: str, model_id: str | None) -> Any:
            encoder = self.dense(model_id or model)
            if embedded is not None:
                embedded[encoder.card.name] = encoder
            return encoder.encode_query(text)

        ctx = SearchContext(
            engine=self.engine, dialect=self.dialect, index=index, timeout_s=self.settings.stage_timeout_s,
            encode_query=encode_query, rerank=lambda q, texts, model_id: self.cross(model_id).score(q, texts))
        return ctx, self.hybrid_defaults(model)

    async def search(self, index: str, body: dict[str, Any],
                     opts: search_mod.SearchOptions) -> tuple[dict[str, Any], dict[str, Any]]:
        """A service-run search on ``index`` with the model its mapping records (kept between searches:
        :mod:`service.index_models`); the answer and the query-log record.  The record's ``warnings``:
        the search embedded its query with other weights than the index's (:meth:`stale_warnings`)."""
        async def attempt(entry: index_models.IndexModel) -> tuple[tuple[dict, dict], set[str]]:
            embedded: dict[str, TextEncoder] = {}
            ctx, defaults = self.context(index, entry.model, embedded)
            answer, record = await search_mod.execute(body, ctx, defaults, opts)
            warnings = self.stale_warnings(index, entry, embedded.values())
            return (answer, {**record, "warnings": warnings} if warnings else record), ctx.answered_by

        return await self.index_models.run(index, attempt)

    def stale_warnings(self, expression: str, entry: index_models.IndexModel,
                       encoders: Iterable[TextEncoder]) -> list[str]:
        """Why the query vectors of ``encoders`` do not fit the vectors of ``expression``: the index's
        model was rebuilt under its name (:mod:`pipelines.stale_vectors`); logged once per message.
        An index recording no fingerprint (created before they existed) is never reported."""
        out = []
        for encoder in encoders:
            stale = stale_indices(entry.fingerprints, encoder.fingerprint) if encoder.card.name == entry.model else {}
            if not stale:
                continue
            message = stale_message(expression, encoder.card.name, stale, encoder.fingerprint)
            if message not in self._stale_logged:
                self._stale_logged.add(message)
                log.warning("%s", message)
            out.append(message)
        return out

    def log_query(self, index: str, record: dict[str, Any], status: int) -> None:
        """Write one query-log record in the background; never fails the search."""
        if not self.settings.query_log:
            return
        task = asyncio.get_running_loop().create_task(self._write_log(index, record, status))
        self._log_tasks.add(task)
        task.add_done_callback(self._log_tasks.discard)

    async def _write_log(self, index: str, record: dict[str, Any], status: int) -> None:
        try:
            text = record.get("query")
            by_stage: dict[str, float] = {}
            for st in record.get("stages", []):
                by_stage[st["stage"]] = by_stage.get(st["stage"], 0.0) + st["took_ms"]
            doc = {"@timestamp": datetime.now(timezone.utc).isoformat(), "index": index, "status": status,
                   "lang": await run_in_threadpool(detect_language, text) if text else None,
                   "took_ms_by_stage": by_stage, **record}
            await self.log_engine.request("POST", f"/{self.settings.query_log_index}/_doc", json_body=doc)
        except Exception as exc:  # noqa: BLE001 - the log must never break a search
            log.warning("query log write failed: %r", exc)

    async def engine_health(self) -> dict[str, Any]:
        """Whether the engine answers ``GET /_cluster/health``, and its cluster status when it does."""
        try:
            resp = await self.engine.request("GET", "/_cluster/health", timeout_s=HEALTH_ENGINE_TIMEOUT_S)
        except EngineError:  # down, slow or circuit open
            return {"reachable": False, "cluster_status": None}
        status = resp.json().get("status") if resp.status == 200 else None
        return {"reachable": True, "cluster_status": status}

    async def ensure_log_index(self) -> None:
        """The query-log and feedback indices with their mappings (an existing one is kept)."""
        for index, body in log_indices(self.settings):
            try:
                await self.engine.json("PUT", f"/{index}", body)
            except EngineError as exc:
                if exc.error_type != "resource_already_exists_exception":
                    log.warning("index %s not created: %s", index, exc.reason)
                if exc.status >= 500:  # the engine is away: one failed start-up call, not one per index
                    return
