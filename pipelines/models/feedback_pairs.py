"""Training pairs from recorded search feedback (``POST /_polyseek/feedback`` beside the query log).

A click, add-to-cart or order on a hit makes (the search's query text, the product's text) a
positive pair; the product's id is its group, so two queries that led to the same product are
never each other's negatives.  Read by ``polyseek models finetune --from-query-log``.
"""

from __future__ import annotations

from pipelines.engine.client import EngineClient
from pipelines.models.finetune import Pair, passage_text
from pipelines.settings import Settings

POSITIVE_EVENTS = ("click", "add_to_cart", "order")


def query_log_pairs(engine: EngineClient, settings: Settings, *, limit: int = 10_000) -> list[Pair]:
    """One pair per distinct (query, index, product) among the latest ``limit`` positive events."""
    if not engine.index_exists(settings.feedback_index):
        return []
    engine.refresh(settings.feedback_index)
    body = {"size": limit, "_source": ["query", "lang", "index", "doc_id"], "sort": [{"@timestamp": "desc"}],
            "query": {"terms": {"event": list(POSITIVE_EVENTS)}}}
    hits = engine.search(settings.feedback_index, body)["hits"]["hits"]
    wanted = {(h["_source"].get("query"), h["_source"].get("index"), h["_source"].get("doc_id")): h["_source"]
              for h in hits if h["_source"].get("query") and h["_source"].get("index")}
    by_index: dict[str, set[str]] = {}
    for _, index, doc_id in wanted:
        by_index.setdefault(index, set()).add(doc_id)
    docs: dict[tuple[str, str], dict] = {}
    for index, doc_ids in by_index.items():
        resp = engine.request("POST", f"/{index}/_mget", json_body={"ids": sorted(doc_ids)})
        docs.update({(index, d["_id"]): d["_source"] for d in resp.get("docs", []) if d.get("found")})
    return [Pair(query, passage_text(docs[(index, doc_id)]), group=f"{index}/{doc_id}", lang=src.get("lang"),
                 source="feedback")
            for (query, index, doc_id), src in wanted.items() if (index, doc_id) in docs]
