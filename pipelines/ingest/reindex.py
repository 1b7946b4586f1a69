"""Zero-downtime model change: re-embed an index into a new physical index behind an alias.

``polyseek reindex products --model NAME``:

1. creates ``products-<model>-<UTC time>`` from the product templates, stamped with the
   new model (``mappings._meta.polyseek_model``);
2. reads every product from what ``products`` serves now (scroll, derived fields left
   out) and puts it on the ingest queue for the new index with ``model=NAME``;
3. waits for the workers, then catches up the products written to the old index
   meanwhile (``ingested_at`` after the start), until none are left;
4. checks the new index holds every product, then switches the alias in one atomic
   ``_aliases`` call.  When ``products`` was a concrete index (created on first use), the
   same call removes it and makes ``products`` an alias of the new index.

With ``semantic_ids=ID`` (``polyseek models semantic-ids fit``), the new index is bound to
that quantiser before the copy starts, so the workers write every document's codes; without
it, a reindex with the model the index already has keeps the index's quantiser (a new model,
or the same name rebuilt with other weights (another fingerprint), has a new vector space: fit again).

The new index records the model's fingerprint, so a reindex with the model of the same name is
the fix for stale vectors (``polyseek reindex --check``, :mod:`pipelines.stale_vectors`).

Searches keep hitting the old index until the switch; the query service keeps the
model it read from the mapping and sees the switch in the next search's answer (hits from
the new physical index, or a refusal of the old model's vector: ``service/index_models.py``),
so the first search after the switch already embeds with the new model.  Nothing is switched when a step fails: the old
index keeps serving and the new one is left for inspection.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from tqdm import tqdm

from pipelines.engine.client import EngineClient
from pipelines.ingest import api
from pipelines.ingest import semantic_ids as semantic_ids_mod
from pipelines.ingest.documents import user_source
from pipelines.models.card import fingerprint, model_paths
from pipelines.schema import INGESTED_AT_FIELD, VECTOR_FIELDS
from pipelines.settings import Settings, get_settings


class ReindexError(RuntimeError):
    """The reindex stopped before the switch; the alias still points where it did."""


@dataclass
class ReindexReport:
    """What a reindex did."""

    alias: str
    model: str
    previous: list[str]
    target: str
    semantic_ids: str | None = None  # the quantiser that codes the new index
    documents: int = 0
    indexed: int = 0
    rejected: int = 0
    caught_up: int = 0
    seconds: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def physical_name(alias: str, model: str) -> str:
    """``<alias>-<model slug>-<UTC timestamp>``: a fresh index name for ``model``."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return f"{alias}-{slug}-{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S%f')}"


def iter_products(engine: EngineClient, index: str, since: str | None = None,
                  page: int = 500) -> Iterator[list[dict[str, Any]]]:
    """Pages of products as their clients sent them (:func:`~pipelines.ingest.documents.user_source`),
    each with its engine id as ``_id``."""
    query = {"range": {INGESTED_AT_FIELD: {"gte": since}}} if since else {"match_all": {}}
    body = {"size": page, "sort": ["_doc"], "query": query, "_source": {"excludes": list(VECTOR_FIELDS)}}
    for hits in engine.scan(index, body):
        yield [{**user_source(h["_source"]), "_id": h["_id"]} for h in hits]


def reindex(alias: str, model: str, settings: Settings | None = None, *, keep_old: bool = False,
            timeout_s: float = 3600.0, progress: bool = True, semantic_ids: str | None = None) -> ReindexReport:
    """Re-embed ``alias`` with ``model`` into a new physical index and switch the alias to it.

    ``semantic_ids``: the stored quantiser to code the new index with (default: the one the
    index has, when ``model`` is the model it has).
    """
    s = settings or get_settings()
    paths = model_paths(s.resolved_model_dir, model)
    card = paths.read_card()  # fails early when the model is missing
    model_fingerprint = fingerprint(paths, card)
    started = time.perf_counter()
    with EngineClient(s, timeout_s=60.0) as engine:
        previous = engine.aliases_of(alias)
        concrete = not previous
        if concrete:
            if not engine.index_exists(alias):
                raise ReindexError(f"no such index or alias [{alias}]")
            previous = [alias]
        report = ReindexReport(alias=alias, model=card.name, previous=previous, target=physical_name(alias, model))
        stamp = engine.index_stamp(alias)
        if semantic_ids is None and stamp.model == card.name and not stamp.stale(model_fingerprint):
            kept = set(semantic_ids_mod.quantizer_ids(engine.request("GET", f"/{alias}/_mapping")).values())
            semantic_ids = kept.pop() if len(kept) == 1 else None
        if semantic_ids is not None:
            semantic_ids_mod.load(engine, semantic_ids)  # fails early when it is not stored
        engine.create_products_index(report.target, card.dims, card.name, model_fingerprint)
        if semantic_ids is not None:
            semantic_ids_mod.bind(engine, report.target, semantic_ids)
            report.semantic_ids = semantic_ids
        since = datetime.now(timezone.utc).isoformat()
        engine.refresh(alias)
        task_ids: list[str] = []
        with tqdm(total=engine.count(alias), desc=f"reindex {alias}", unit="doc", disable=not progress) as bar:
            for batch in iter_products(engine, alias):
                task_ids += api.enqueue(report.target, batch, s, model=card.name)
                report.documents += len(batch)
                bar.update(len(batch))
        results = api.wait(task_ids, timeout_s=timeout_s)
        while True:  # products written to the old index while the copy ran
            engine.refresh(alias)
            next_since = datetime.now(timezone.utc).isoformat()
            late = [doc for batch in iter_products(engine, alias, since=since) for doc in batch]
            if not late:
                break
            results += api.wait(api.enqueue(report.target, late, s, model=card.name), timeout_s=timeout_s)
            report.caught_up += len(late)
            since = next_since
        report.indexed = sum(r["indexed"] for r in results)
        report.rejected = sum(r["rejected"] for r in results)
        report.errors = [e for r in results for e in r["errors"]][:20]
        engine.refresh(report.target)
        have, want = engine.count(report.target), engine.count(alias)
        if have < want:
            raise ReindexError(f"[{report.target}] holds {have} of the {want} products of [{alias}] "
                               f"({report.rejected} rejected, see the dead-letter index); alias not switched")
        actions: list[dict[str, Any]] = [{"add": {"index": report.target, "alias": alias}}]
        if concrete:
            actions.append({"remove_index": {"index": alias}})
        else:
            actions = [{"remove": {"index": old, "alias": alias}} for old in previous] + actions
        engine.update_aliases(actions)
        if not concrete and not keep_old:
            for old in previous:
                engine.delete_index(old)
    report.seconds = round(time.perf_counter() - started, 1)
    return report
