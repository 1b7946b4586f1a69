"""Stale vectors: an index embedded by other weights than the model of the same name loaded now.

A products index records the dense model that embedded it and that model's fingerprint
(``mappings._meta``: :data:`~pipelines.engine.dialect.MODEL_META_KEY`,
:data:`~pipelines.engine.dialect.FINGERPRINT_META_KEY`); every document records the fingerprint
of the weights that embedded it (``model.fingerprint``).  When a model is rebuilt under the same
name (``polyseek models build`` after a new adapter), the fingerprint it loads with differs from
the one the index recorded: its query vectors and the index's document vectors come from different
weights, and kNN ranks by noise.  Nothing refuses: the index still answers (BM25 is unaffected),
but it says so everywhere it is used:

- the query service answers every search that embeds a query (kNN, hybrid, sparse) on such an
  index with an Elasticsearch ``Warning`` header (elasticsearch-py raises it as an
  ``ElasticsearchWarning``) and logs it once per index and fingerprint;
- an ingest worker (or a synchronous write through the service) writing into it logs it and
  counts the documents it embedded with the new weights (``stale_model`` in the batch result and
  the status document); each document records its own fingerprint, so
  ``polyseek reindex --check`` shows how many are of each;
- ``polyseek reindex --check`` lists the indices whose vectors are stale.

The fix is ``polyseek reindex INDEX --model NAME``: it re-embeds everything into a new physical
index stamped with the loaded fingerprint.  Indices created before fingerprints existed record
none and are never reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pipelines.engine.client import EngineClient

STALE_WARNING_CODE = 299  # RFC 7234 "miscellaneous persistent warning", the code Elasticsearch uses
WARN_AGENT = "Elasticsearch-polyseek"


def stale_indices(recorded: Mapping[str, str], fingerprint: str) -> dict[str, str]:
    """The physical indices of ``recorded`` (index -> fingerprint) whose fingerprint is not ``fingerprint``."""
    return {index: fp for index, fp in recorded.items() if fp != fingerprint}


def stale_message(expression: str, model: str, stale: Mapping[str, str], fingerprint: str) -> str:
    """What to tell a user of ``expression`` whose physical indices ``stale`` were embedded by other
    weights of ``model`` than those of ``fingerprint`` (no double quotes: it goes into a header)."""
    where = ", ".join(f"[{index}] by fingerprint [{fp}]" for index, fp in sorted(stale.items()))
    return (f"stale vectors: index {where} was embedded by other weights of model [{model}] than the "
            f"loaded ones (fingerprint [{fingerprint}]); kNN and sparse scores compare vectors of different "
            f"models. Re-embed it: polyseek reindex {expression} --model {model}")


def warning_header(message: str) -> str:
    """An Elasticsearch-style ``Warning`` header value: ``299 <agent> "<message>"``."""
    text = message.replace("\\", "\\\\").replace('"', '\\"')
    return f'{STALE_WARNING_CODE} {WARN_AGENT} "{text}"'


State = Literal["ok", "stale", "mixed", "unknown", "model_missing"]
NO_FINGERPRINT = "(none)"  # documents written before fingerprints, in :attr:`VectorCheck.documents`


@dataclass
class VectorCheck:
    """One physical products index against the model of its name in the model cache.

    ``state``: ``ok`` (same fingerprint, every document too); ``stale`` (the index records another
    fingerprint than the cache's model: reindex); ``mixed`` (same fingerprint, but some documents
    were written with other weights: reindex); ``unknown`` (the index records no fingerprint: created
    before they existed); ``model_missing`` (no such model in the cache).
    """

    index: str
    searched_as: str  # the alias clients search (the index itself when none): what to reindex
    model: str
    recorded: str | None  # the fingerprint the index records
    loaded: str | None  # the fingerprint of the cache's model of that name
    documents: dict[str, int] = field(default_factory=dict)  # fingerprint -> documents written with it
    state: State = "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def needs_reindex(self) -> bool:
        return self.state in ("stale", "mixed")


def _fingerprint_field(mapping: Mapping[str, Any]) -> str | None:
    """The aggregatable field of ``model.fingerprint`` in one index's mapping (a keyword in indices made
    from the templates, a text field's ``.keyword`` where written dynamically), None when unmapped."""
    fp = (((mapping.get("mappings") or {}).get("properties") or {}).get("model", {}).get("properties") or {}).get(
        "fingerprint") or {}
    if fp.get("type") == "keyword":
        return "model.fingerprint"
    return "model.fingerprint.keyword" if "keyword" in (fp.get("fields") or {}) else None


def check_indices(engine: EngineClient, model_dir: Path, expression: str = "_all") -> list[VectorCheck]:
    """Every products index of ``expression`` (indices recording their dense model) against the
    fingerprint of the model of that name in ``model_dir``, with its documents counted per fingerprint."""
    from pipelines.engine.dialect import MODEL_META_KEY, fingerprints_of, meta_values
    from pipelines.models.card import cached_fingerprint

    mapping = engine.request("GET", f"/{expression}/_mapping")
    models = meta_values(mapping, MODEL_META_KEY)
    recorded = fingerprints_of(mapping)
    aliases = engine.request("GET", f"/{expression}/_alias", ok_statuses=(404,)) or {}
    loaded = {name: cached_fingerprint(model_dir, name) for name in set(models.values())}
    out = []
    for index in sorted(models):
        names = sorted((aliases.get(index) or {}).get("aliases") or {})
        check = VectorCheck(index, names[0] if len(names) == 1 else index, models[index], recorded.get(index),
                            loaded[models[index]])
        agg_field = _fingerprint_field(mapping[index])
        aggs = {"none": {"missing": {"field": agg_field}}, "by": {"terms": {"field": agg_field, "size": 100}}} \
            if agg_field else {}
        resp = engine.search(index, {"size": 0, "track_total_hits": True, "aggs": aggs})
        check.documents = {b["key"]: b["doc_count"] for b in resp.get("aggregations", {}).get("by", {}).get("buckets", [])}
        if not agg_field:
            check.documents[NO_FINGERPRINT] = resp["hits"]["total"]["value"]
        elif resp["aggregations"]["none"]["doc_count"]:
            check.documents[NO_FINGERPRINT] = resp["aggregations"]["none"]["doc_count"]
        if check.loaded is None:
            check.state = "model_missing"
        elif check.recorded is None:
            check.state = "unknown"
        elif check.recorded != check.loaded:
            check.state = "stale"
        elif set(check.documents) - {check.loaded, NO_FINGERPRINT}:
            check.state = "mixed"
        out.append(check)
    return out
