"""Search feedback: clicks and orders recorded against a search, beside the query log.

Every search the service runs gets an id, returned in the ``X-Polyseek-Search-Id``
response header and stored in its query-log record together with the client's
``X-Opaque-Id``.  ``POST /_polyseek/feedback`` records what the shopper did with a hit:

    {"search_id": "…", "doc_id": "p000-en", "event": "click", "position": 1}

(or ``"opaque_id"`` instead of ``search_id``; ``events`` takes a list of such records).
The record is enriched with the search's query text and language from the query log, so
``polyseek models finetune --from-query-log`` can turn it into (query, product) pairs, and with the
clicked document's language (its ``lang`` field in the record's index, looked up with one ``_msearch``
per request: :func:`doc_lookup`) as ``doc_lang`` and the pair ``lang_pair`` (``"de->en"``: query
language, then document language; ``und`` where either is unknown), which the Kibana click-through
charts split on.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.schema import LANG_FIELD, UNDETERMINED
from service.errors import SearchError

SEARCH_ID_HEADER = "X-Polyseek-Search-Id"
Event = Literal["click", "add_to_cart", "order", "view"]


class FeedbackEvent(BaseModel):
    """One thing a shopper did with one hit of one search."""

    model_config = ConfigDict(extra="forbid")

    search_id: str | None = Field(None, min_length=1, max_length=128)
    opaque_id: str | None = Field(None, min_length=1, max_length=512)
    doc_id: str = Field(min_length=1, max_length=512)
    index: str | None = Field(None, min_length=1, max_length=255)
    event: Event = "click"
    position: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _keyed(self) -> "FeedbackEvent":
        if not self.search_id and not self.opaque_id:
            raise ValueError("feedback needs [search_id] or [opaque_id]")
        return self


class FeedbackRequest(BaseModel):
    """One event, or several under ``events``."""

    model_config = ConfigDict(extra="forbid")

    events: list[FeedbackEvent] = Field(min_length=1, max_length=1000)


def parse_feedback(body: Any) -> list[FeedbackEvent]:
    """The events of a request body; a 400 in Elasticsearch's shape when it is malformed."""
    from service.retrievers import parse_error

    if not isinstance(body, dict):
        raise SearchError(400, "parse_exception", "request body must be a JSON object")
    try:
        if "events" in body:
            return FeedbackRequest.model_validate(body).events
        return [FeedbackEvent.model_validate(body)]
    except ValidationError as exc:
        raise parse_error(exc, "feedback") from None


def log_lookup_query(events: list[FeedbackEvent]) -> dict[str, Any]:
    """A query-log search for the searches these events point at."""
    should = [{"terms": {"search_id": sorted({e.search_id for e in events if e.search_id})}},
              {"terms": {"opaque_id": sorted({e.opaque_id for e in events if e.opaque_id})}}]
    return {"size": 2 * len(events), "_source": ["search_id", "opaque_id", "query", "lang", "index"],
            "query": {"bool": {"should": should, "minimum_should_match": 1}}}


def feedback_documents(events: list[FeedbackEvent], searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feedback records joined with their searches' query text, language and index.

    Raises a 404 ``resource_not_found_exception`` naming an event whose search is unknown.
    """
    by_sid = {s["search_id"]: s for s in searches if s.get("search_id")}
    by_oid = {s["opaque_id"]: s for s in searches if s.get("opaque_id")}
    now = datetime.now(timezone.utc).isoformat()
    docs = []
    for e in events:
        search = by_sid.get(e.search_id) if e.search_id else by_oid.get(e.opaque_id)
        if search is None:
            key = f"search_id [{e.search_id}]" if e.search_id else f"opaque_id [{e.opaque_id}]"
            raise SearchError(404, "resource_not_found_exception", f"no logged search with {key}")
        docs.append({"@timestamp": now, **e.model_dump(exclude_none=True),
                     "search_id": search.get("search_id"), "query": search.get("query"),
                     "lang": search.get("lang"), "index": e.index or search.get("index")})
    return docs


def doc_lookup(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """One search per index these records name (the items of one ``_msearch``): the languages of the
    documents they name there."""
    by_index: dict[str, set[str]] = {}
    for d in docs:
        if d.get("index"):
            by_index.setdefault(d["index"], set()).add(d["doc_id"])
    # an alias or wildcard may hold an id more than once
    return [(index, {"size": min(10_000, 20 * len(ids)), "_source": False, "docvalue_fields": [LANG_FIELD],
                     "query": {"ids": {"values": sorted(ids)}}}) for index, ids in sorted(by_index.items())]


def add_language_pairs(docs: list[dict[str, Any]], hits: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``docs`` with ``doc_lang`` (the document's language in its record's index, from ``hits``: index ->
    the hits :func:`doc_lookup` found there; ``und`` for a document or index not found) and ``lang_pair``
    (``"de->en"``)."""
    langs: dict[str, dict[str, str]] = {}
    for index, index_hits in hits.items():
        for hit in index_hits:
            value = (hit.get("fields") or {}).get(LANG_FIELD)
            if value:
                langs.setdefault(index, {}).setdefault(hit["_id"], value[0])
    for d in docs:
        d["doc_lang"] = langs.get(d.get("index", ""), {}).get(d["doc_id"], UNDETERMINED)
        d["lang_pair"] = f"{d.get('lang') or UNDETERMINED}->{d['doc_lang']}"
    return docs
