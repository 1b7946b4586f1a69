"""The synchronous engine client of the CLI and the ingest workers: index-level calls in the dialect.

Requests go through :class:`~pipelines.engine.transport.Engine`, the synchronous face of the one
engine transport (retries, circuit breaker, :mod:`pipelines.engine.errors`). The stock
``elasticsearch`` client refuses to talk to OpenSearch (product check), so the calls both
dialects share are written here, with the dialect for what differs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.engine.dialect import Body, Dialect, dialect_for, fingerprints_of, models_of
from pipelines.engine.errors import from_response
from pipelines.engine.transport import Engine
from pipelines.models.card import cached_fingerprint
from pipelines.stale_vectors import stale_indices
from pipelines.settings import Settings


@dataclass
class BulkItemResult:
    """One line of a ``_bulk`` response."""

    id: str
    status: int
    result: str | None
    error: Body | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status < 300

    @property
    def retryable(self) -> bool:
        """429 and 5xx are the engine's trouble, not the document's."""
        return self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class IndexStamp:
    """The dense model an index's mapping records and, per physical index, that model's fingerprint."""

    model: str | None  # None: none recorded, or the indices behind an alias record different ones
    fingerprints: dict[str, str]  # physical index -> fingerprint (indices created before fingerprints: absent)

    def stale(self, fingerprint: str) -> dict[str, str]:
        """The physical indices whose recorded fingerprint is not ``fingerprint``, with theirs."""
        return stale_indices(self.fingerprints, fingerprint)


class EngineClient:
    """Synchronous calls to the engine at ``settings.engine_url``."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0):
        self.settings = settings
        self.dialect: Dialect = dialect_for(settings.engine)
        self.transport = Engine(settings.engine_url, timeout_s=timeout_s)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------
    def request(self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None,
                params: Mapping[str, Any] | None = None, ok_statuses: Iterable[int] = ()) -> Any:
        """Send one request, return its parsed answer; raise :class:`~pipelines.engine.errors.EngineUnavailable`
        (worth a retry) or :class:`~pipelines.engine.errors.EngineRequestError` (4xx not in ``ok_statuses``)."""
        return self.transport.json(method, path, json_body, content=content, params=params,
                                   ok_statuses=tuple(ok_statuses))

    # -- indices -------------------------------------------------------------------
    def index_exists(self, index: str) -> bool:
        return self.transport.request("HEAD", f"/{index}").status < 300

    def create_products_index(self, index: str, dims: int | None = None, model: str | None = None,
                              fingerprint: str | None = None) -> bool:
        """Create ``index`` from the product templates (under ``settings.product_fields``' names), stamped
        with its dense ``model`` (default: settings) and the model's ``fingerprint`` (default: read from the
        model's card; none when the model is not in the cache); False if it already exists."""
        model = model or self.settings.dense_model
        if fingerprint is None:
            fingerprint = cached_fingerprint(self.settings.resolved_model_dir, model)
        body = self.dialect.product_index_body(dims or self.settings.dense_dims, model,
                                               self.settings.product_fields, fingerprint)
        return self._create(index, body)

    def index_model(self, index: str) -> str | None:
        """The dense model ``index`` (or the indices behind an alias) was embedded with, if recorded."""
        return self.index_stamp(index).model

    def index_stamp(self, index: str) -> IndexStamp:
        """What ``index``'s mapping (or those of the indices behind an alias) records of its dense model."""
        mapping = self.request("GET", f"/{index}/_mapping", ok_statuses=(404,)) or {}
        found = models_of(mapping)
        return IndexStamp(found.pop() if len(found) == 1 else None, fingerprints_of(mapping))

    def aliases_of(self, name: str) -> list[str]:
        """Physical indices behind alias ``name`` (empty when ``name`` is no alias)."""
        resp = self.request("GET", f"/_alias/{name}", ok_statuses=(404,)) or {}
        return sorted(k for k, v in resp.items() if isinstance(v, dict) and name in v.get("aliases", {}))

    def update_aliases(self, actions: list[Body]) -> None:
        """Apply alias actions atomically (``POST /_aliases``)."""
        self.request("POST", "/_aliases", json_body={"actions": actions})

    def create_dead_letter_index(self, index: str | None = None) -> bool:
        return self._create(index or self.settings.dead_letter_index, self.dialect.dead_letter_index_body())

    def _create(self, index: str, body: Body) -> bool:
        resp = self.request("PUT", f"/{index}", json_body=body, ok_statuses=(400,))
        if resp and resp.get("error"):
            if resp["error"].get("type") == "resource_already_exists_exception":
                return False
            raise from_response(400, resp)
        return True

    def delete_index(self, index: str) -> None:
        self.request("DELETE", f"/{index}", ok_statuses=(404,))

    def refresh(self, index: str) -> None:
        self.request("POST", f"/{index}/_refresh")

    # -- documents -----------------------------------------------------------------
    def bulk_index(self, index: str, docs: Iterable[tuple[str, Body]], refresh: bool = False) -> list[BulkItemResult]:
        """Index ``(id, source)`` pairs with one ``_bulk`` call; one result per document."""
        lines: list[str] = []
        for doc_id, source in docs:
            lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
            lines.append(json.dumps(source, ensure_ascii=False))
        if not lines:
            return []
        payload = ("\n".join(lines) + "\n").encode()
        resp = self.request("POST", "/_bulk", content=payload,
                            params={"refresh": "true"} if refresh else None)
        results = []
        for item in resp["items"]:
            (action,) = item.values()
            results.append(BulkItemResult(id=action.get("_id"), status=action.get("status", 500),
                                          result=action.get("result"), error=action.get("error")))
        return results

    def scan(self, index: str, body: Body, scroll: str = "5m") -> Iterator[list[Body]]:
        """Every hit of ``body`` on ``index``, a page (``body["size"]`` hits) at a time, with a scroll
        that is cleared however the caller stops (elasticsearch-py's ``helpers.scan``, by page)."""
        resp = self.request("POST", f"/{index}/_search", params={"scroll": scroll}, json_body=body)
        scroll_id = resp.get("_scroll_id")
        try:
            while resp["hits"]["hits"]:
                yield resp["hits"]["hits"]
                resp = self.request("POST", "/_search/scroll", json_body={"scroll": scroll, "scroll_id": scroll_id})
                scroll_id = resp.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                self.request("DELETE", "/_search/scroll", json_body={"scroll_id": scroll_id}, ok_statuses=(404,))

    def search(self, index: str, body: Body) -> Body:
        return self.request("POST", f"/{index}/_search", json_body=body)

    def count(self, index: str) -> int:
        return self.request("GET", f"/{index}/_count")["count"]
