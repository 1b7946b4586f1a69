"""``collapse`` for searches the service runs (retrievers and the hybrid shorthand).

Elasticsearch's field collapsing on the fused list: one hit per value of a keyword or
numeric field (``semantic_id``, a code prefix ``semantic_id_l1``, ``brand``, ...), in
the order of each group's best member, with ``fields.<field>`` and optional
``inner_hits`` listing the group's members.  Pass-through searches (plain query DSL)
collapse in the engine itself.

What the service adds: the group's representative is the member in the shopper's
language when the group has one -- ``collapse.lang`` when given (a Polyseek extension),
else the language detected from the query text -- so a German shopper sees the German
listing of a product and its other language versions under ``inner_hits``.  A group
ranks, and is scored, by its best member.

Groups are formed over the fused window (``rank_window_size`` documents, after
``post_filter``/``min_score``); ``hits.total`` counts documents, as in Elasticsearch.
Inner hits come from the whole index (the group's members that pass the request's
filters), those in the fused window first with their fused scores, the others after
them with ``_score: null``.  Documents without a value form one group (``fields.<field>:
[null]``), as in Elasticsearch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.schema import LANG_FIELD
from service import source as source_mod
from service.errors import bad_request
from service.retrievers import SearchContext

COLLAPSIBLE_TYPES = frozenset({"keyword", "constant_keyword", "long", "integer", "short", "byte", "double", "float",
                               "half_float", "scaled_float", "unsigned_long", "date", "boolean", "ip"})
MAX_INNER_DOCS = 10_000  # members fetched for the inner hits of one page


class InnerHits(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = None
    size: int = Field(3, ge=0, le=100)
    from_: int = Field(0, alias="from", ge=0)
    source: bool | str | list[str] | dict[str, Any] | None = Field(None, alias="_source")


class Collapse(BaseModel):
    """The ``collapse`` object of a service-run search."""

    model_config = ConfigDict(extra="forbid")
    field: str
    inner_hits: InnerHits | list[InnerHits] | None = None
    max_concurrent_group_searches: int | None = Field(None, ge=1)  # accepted; one engine call serves all groups
    lang: str | None = None  # the representative's preferred language (default: the query's)

    @property
    def inner(self) -> list[InnerHits]:
        if self.inner_hits is None:
            return []
        return self.inner_hits if isinstance(self.inner_hits, list) else [self.inner_hits]


@dataclass
class Group:
    """One collapsed hit: the value, its representative, its score (the best member's), the members
    in the fused window (in fused order)."""

    value: Any
    representative: str
    score: float
    members: list[tuple[str, float]]


async def check_field(ctx: SearchContext, field: str) -> None:
    """A 400 unless ``field`` is mapped with a type that can be collapsed on (as Elasticsearch)."""
    resolution = {k: v for k, v in ctx.params.items()
                  if k in ("ignore_unavailable", "allow_no_indices", "expand_wildcards")}
    resp = await ctx.engine.request("GET", f"/{ctx.index}/_mapping/field/{field}", params=resolution or None,
                                    timeout_s=ctx.timeout_s)
    types = set()
    if resp.status == 200:
        for physical in resp.json().values():
            for mapped in (physical.get("mappings") or {}).values():
                for leaf in (mapped.get("mapping") or {}).values():
                    types.add(leaf.get("type"))
    if not types:
        raise bad_request(f"[collapse] no mapping found for [{field}] in order to collapse on",
                          "illegal_argument_exception")
    wrong = types - COLLAPSIBLE_TYPES
    if wrong:
        raise bad_request(f"[collapse] collapse is not supported for the field [{field}] of the type "
                          f"[{sorted(wrong)[0]}]", "illegal_argument_exception")


def preferred_language(spec: Collapse, ctx: SearchContext) -> str | None:
    """``collapse.lang``, else the language of the query text (None when unknown or there is none)."""
    if spec.lang:
        return spec.lang
    return ctx.query_language()


async def group(ctx: SearchContext, spec: Collapse, ranked: list[tuple[str, float]]) -> list[Group]:
    """The fused list collapsed on ``spec.field``: one group per value, in the order of its best member."""
    if not ranked:
        return []
    await check_field(ctx, spec.field)
    t0 = time.perf_counter()
    resp = await ctx.search({"query": {"ids": {"values": [d for d, _ in ranked]}}, "size": len(ranked),
                             "_source": False, "docvalue_fields": [spec.field, LANG_FIELD], "track_total_hits": False})
    values: dict[str, tuple[Any, Any]] = {}
    for h in resp["hits"]["hits"]:
        f = h.get("fields") or {}
        values[h["_id"]] = ((f.get(spec.field) or [None])[0], (f.get(LANG_FIELD) or [None])[0])
    lang = preferred_language(spec, ctx)
    groups: dict[Any, Group] = {}
    for doc_id, score in ranked:
        if doc_id not in values:  # deleted meanwhile
            continue
        value, doc_lang = values[doc_id]
        g = groups.get(value)
        if g is None:
            groups[value] = g = Group(value, doc_id, score, [])
        elif lang and doc_lang == lang and values[g.representative][1] != lang:
            g.representative = doc_id
        g.members.append((doc_id, score))
    ctx.stages.append({"stage": "collapse", "took_ms": round((time.perf_counter() - t0) * 1000, 2),
                       "hits": len(groups), "field": spec.field, "lang": lang})
    return list(groups.values())


async def inner_hits(ctx: SearchContext, spec: Collapse, page: list[Group], post_filter: Any,
                     default_source: Any) -> dict[str, dict[str, Any]]:
    """Per representative id, its ``inner_hits`` (one entry per ``collapse.inner_hits``);
    ``default_source``: the request's ``_source`` as the client gave it (None: not given)."""
    inner = spec.inner
    if not inner or not page:
        return {}
    values = [g.value for g in page if g.value is not None]
    clauses: list[Any] = [*ctx.filters] + ([post_filter] if post_filter is not None else [])
    match: list[Any] = []
    if values:
        match.append({"terms": {spec.field: values}})
    if any(g.value is None for g in page):
        match.append({"bool": {"must_not": [{"exists": {"field": spec.field}}]}})
    sources = [i.source if i.source is not None else default_source for i in inner]
    uniform = all(s == sources[0] for s in sources)
    body = {"query": {"bool": {"filter": [*clauses, {"bool": {"should": match, "minimum_should_match": 1}}]}},
            "size": MAX_INNER_DOCS, "docvalue_fields": [spec.field, LANG_FIELD], "track_total_hits": False,
            "_source": source_mod.fetch_value(sources[0] if uniform else None)}
    t0 = time.perf_counter()
    resp = await ctx.search(body)
    by_value: dict[Any, list[dict]] = {}
    lang_of: dict[str, str] = {}
    for h in source_mod.hide(resp["hits"]["hits"]):
        fields = h.pop("fields", None) or {}
        value = (fields.get(spec.field) or [None])[0]
        lang_of[h["_id"]] = str((fields.get(LANG_FIELD) or [None])[0])
        by_value.setdefault(value, []).append(h)
    ctx.stages.append({"stage": "inner_hits", "took_ms": round((time.perf_counter() - t0) * 1000, 2),
                       "hits": len(resp["hits"]["hits"])})
    out: dict[str, dict[str, Any]] = {}
    for g in page:
        fused = dict(g.members)
        order = {d: n for n, (d, _) in enumerate(g.members)}
        members = sorted(by_value.get(g.value, []), key=lambda h: (
            order.get(h["_id"], len(order)), lang_of[h["_id"]], h["_id"]))
        for h in members:
            h["_score"] = fused.get(h["_id"])
        entry = {}
        for n, spec_i in enumerate(inner):
            chosen = members[spec_i.from_:spec_i.from_ + spec_i.size]
            hits = chosen if uniform else [_shape_source(h, sources[n]) for h in chosen]
            scores = [h["_score"] for h in members if h["_score"] is not None]
            entry[spec_i.name or spec.field] = {"hits": {
                "total": {"value": len(members), "relation": "eq"},
                "max_score": max(scores) if scores else None, "hits": hits}}
        out[g.representative] = entry
    return out


def _shape_source(hit: dict, source: Any) -> dict:
    """An inner hit with its own ``_source`` filter (field names, no patterns), when the inner hits
    of a request differ in theirs."""
    hit = dict(hit)
    if source is False:
        hit.pop("_source", None)
    elif isinstance(source, (list, str)) and "_source" in hit:
        keep = [source] if isinstance(source, str) else source
        hit["_source"] = {k: v for k, v in hit["_source"].items() if k in keep}
    return hit
