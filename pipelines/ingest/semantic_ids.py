"""Semantic IDs of a products index: where its quantiser lives, fitting it, near-duplicates.

- A fitted :class:`~pipelines.models.semantic_ids.ResidualQuantizer` is one document of
  the ``semantic_ids_index`` (codebooks as a base64 ``.npz``, id = content hash), so every
  worker and service process reads the same codebooks from the engine.
- A products index names the quantiser that codes it in ``mappings._meta.polyseek_semantic_ids``;
  workers and the service's synchronous writes then add ``semantic_id`` and
  ``semantic_id_l<n>`` to each document in the same ``_bulk`` as its vectors.
- ``polyseek models semantic-ids fit --index X`` fits on the vectors stored in ``X`` and
  re-codes every document through the reindex-by-alias path
  (:func:`pipelines.ingest.reindex.reindex` with ``semantic_ids=``): a new physical index
  bound to the quantiser, filled by the workers, checked to hold every product, then the
  alias switches.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from pipelines.engine.client import EngineClient
from pipelines.engine.dialect import load_template
from pipelines.models.semantic_ids import ResidualQuantizer, fit, pair_quality
from pipelines.schema import CODE_FIELD, LANG_FIELD, VECTOR_FIELD, prefix_field
from pipelines.settings import Settings, get_settings

META_KEY = "polyseek_semantic_ids"  # mappings._meta key: id of the quantiser that codes the index


def store_index_body() -> dict[str, Any]:
    """Settings and mappings of the quantiser store (es_templates/component/semantic-ids.json)."""
    return load_template("component/semantic-ids.json")["template"]


def save(engine: EngineClient, q: ResidualQuantizer, *, model: str | None, fitted_on: str | None) -> str:
    """Store ``q`` (idempotent: its id is a content hash); returns the id."""
    store = engine.settings.semantic_ids_index
    engine.request("PUT", f"/{store}", json_body=store_index_body(), ok_statuses=(400,))  # 400: exists
    doc = {"id": q.id, "model": model, "fitted_on": fitted_on, "created_at": datetime.now(timezone.utc).isoformat(),
           "levels": q.levels, "sizes": q.sizes, "dims": q.dims, "info": q.info,
           "codebooks": base64.b64encode(q.to_bytes()).decode()}
    engine.request("PUT", f"/{store}/_doc/{q.id}", json_body=doc, params={"refresh": "true"})
    return q.id


_LOADED: dict[tuple[str, str, str], ResidualQuantizer] = {}


def load(engine: EngineClient, quantizer_id: str) -> ResidualQuantizer:
    """The stored quantiser ``quantizer_id`` (cached per process: a stored quantiser never changes,
    its id is the hash of its codebooks)."""
    key = (engine.settings.engine_url, engine.settings.semantic_ids_index, quantizer_id)
    if key not in _LOADED:
        doc = engine.request("GET", f"/{key[1]}/_doc/{quantizer_id}", ok_statuses=(404,)) or {}
        if not doc.get("found"):
            raise LookupError(f"no semantic-id quantiser [{quantizer_id}] in [{key[1]}]")
        src = doc["_source"]
        q = ResidualQuantizer.from_bytes(base64.b64decode(src["codebooks"]))
        _LOADED[key] = replace(q, info={**q.info, "model": src.get("model"), "fitted_on": src.get("fitted_on")})
    return _LOADED[key]


def quantizer_ids(mapping_response: dict[str, Any]) -> dict[str, str | None]:
    """Per physical index of a ``GET /{index}/_mapping`` answer, the quantiser id it records (or None)."""
    return {name: ((body.get("mappings") or {}).get("_meta") or {}).get(META_KEY)
            for name, body in (mapping_response or {}).items() if isinstance(body, dict)}


def index_quantizer(engine: EngineClient, index: str) -> ResidualQuantizer | None:
    """The quantiser that codes ``index`` (None: no codes, also when the physical indices behind an
    alias disagree; a missing index has none)."""
    found = set(quantizer_ids(engine.request("GET", f"/{index}/_mapping", ok_statuses=(404,)) or {}).values())
    if len(found) != 1 or None in found:
        return None
    return load(engine, found.pop())


def bind(engine: EngineClient, index: str, quantizer_id: str) -> None:
    """Record ``quantizer_id`` in the mapping ``_meta`` of ``index`` (its other ``_meta`` keys kept)."""
    mapping = engine.request("GET", f"/{index}/_mapping")
    for physical, body in mapping.items():
        meta = dict((body.get("mappings") or {}).get("_meta") or {})
        meta[META_KEY] = quantizer_id
        engine.request("PUT", f"/{physical}/_mapping", json_body={"_meta": meta})


def code_field(level: int | None, levels: int) -> str:
    """The keyword field of a code level: the full code at ``levels`` (or None), else its prefix field."""
    if level is None or level == levels:
        return CODE_FIELD
    if not 1 <= level < levels:
        raise ValueError(f"level must be between 1 and {levels}, got {level}")
    return prefix_field(level)


# --- stored vectors -----------------------------------------------------------------------------

def iter_vectors(engine: EngineClient, index: str, fields: tuple[str, ...] = (LANG_FIELD,),
                 page: int = 500) -> Iterator[tuple[list[str], np.ndarray, list[dict[str, Any]]]]:
    """Pages of ``(ids, (n, dims) vectors, sources with fields)`` of the documents of ``index``
    that have a stored ``embedding`` (scroll)."""
    body = {"size": page, "sort": ["_doc"], "query": {"exists": {"field": VECTOR_FIELD}},
            "_source": [VECTOR_FIELD, *fields]}
    for hits in engine.scan(index, body):
        yield ([h["_id"] for h in hits], np.asarray([h["_source"][VECTOR_FIELD] for h in hits], dtype=np.float32),
               [{k: v for k, v in h["_source"].items() if k != VECTOR_FIELD} for h in hits])


def stored_vectors(engine: EngineClient, index: str,
                   fields: tuple[str, ...] = (LANG_FIELD,)) -> tuple[list[str], np.ndarray, list[dict]]:
    """Every document's id, stored vector and ``fields`` (one array; for fitting and near-duplicates)."""
    ids: list[str] = []
    vecs: list[np.ndarray] = []
    sources: list[dict] = []
    for page_ids, page_vecs, page_src in iter_vectors(engine, index, fields):
        ids += page_ids
        vecs.append(page_vecs)
        sources += page_src
    return ids, (np.concatenate(vecs) if vecs else np.zeros((0, 0), np.float32)), sources


# --- fit ----------------------------------------------------------------------------------------

@dataclass
class FitReport:
    """What ``polyseek models semantic-ids fit`` did."""

    index: str
    quantizer: str
    model: str | None
    vectors: int
    sizes: list[int]
    mse_per_level: list[float]
    fit_seconds: float
    groups_per_level: list[int] = field(default_factory=list)  # distinct codes of the fitted catalog
    # with a group key (one product's language versions share it): same-product pair precision/recall per level
    pair_quality: list[dict[str, float]] | None = None
    reindex: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_index(index: str, settings: Settings | None = None, *, levels: int | None = None, codes: int | None = None,
              seed: int = 0, recode: bool = True, timeout_s: float = 3600.0, progress: bool = True,
              group_key: str | None = None) -> FitReport:
    """Fit a quantiser on the vectors stored in ``index`` and (``recode``) re-code every document.

    The re-code is a reindex behind the alias with the index's own model: the old index
    serves until the new one holds every product (see :mod:`pipelines.ingest.reindex`).
    ``group_key``: a document field (dotted path) that one product's language versions
    share; the report then says, per level, how well codes group them (pick the collapse
    level from it: the finest level whose precision is high enough).
    """
    from pipelines.ingest.reindex import reindex

    s = settings or get_settings()
    with EngineClient(s, timeout_s=60.0) as engine:
        if not engine.index_exists(index):
            raise LookupError(f"no such index [{index}]")
        model = engine.index_model(index) or s.dense_model
        ids, vectors, sources = stored_vectors(engine, index, (LANG_FIELD, group_key) if group_key else (LANG_FIELD,))
        if not ids:
            raise ValueError(f"[{index}] holds no embedded documents to fit on")
        langs = [src.get(LANG_FIELD) for src in sources]
        started = time.perf_counter()
        q = fit(vectors, langs, levels=levels or s.semantic_id_levels, codes=codes or s.semantic_id_codes, seed=seed)
        seconds = round(time.perf_counter() - started, 2)
        q = replace(q, info={**q.info, "model": model, "fitted_on": index})
        save(engine, q, model=model, fitted_on=index)
    codes_ = q.encode(vectors, langs)
    groups = [len({tuple(r[:n]) for r in codes_}) for n in range(1, q.levels + 1)]
    report = FitReport(index=index, quantizer=q.id, model=model, vectors=len(ids), sizes=q.sizes,
                       mse_per_level=q.info["mse_per_level"], fit_seconds=seconds, groups_per_level=groups)
    if group_key:
        report.pair_quality = pair_quality(codes_, [_path(src, group_key) for src in sources])
    if recode:
        report.reindex = reindex(index, model, s, semantic_ids=q.id, timeout_s=timeout_s,
                                 progress=progress).as_dict()
    return report


def _path(source: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a ``_source`` (None when missing; lists and objects as a string key)."""
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, (str, int, float, bool)) or node is None else repr(node)


# --- near-duplicates ----------------------------------------------------------------------------

@dataclass
class NearDuplicate:
    """Two documents whose codes share a prefix and whose vectors are at least ``min_cosine`` alike."""

    ids: tuple[str, str]
    cosine: float
    code: str
    langs: tuple[str | None, str | None]
    titles: tuple[str | None, str | None]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def near_duplicates(engine: EngineClient, index: str, *, level: int = 1, min_cosine: float | None = None,
                    same_lang: bool = False, limit: int = 1000) -> list[NearDuplicate]:
    """Pairs of documents under different ids that are probably the same product.

    Candidates share the code prefix of ``level`` (a cheap blocking key: only pairs within
    a group are compared); a pair is reported when its cosine is at least ``min_cosine``
    (default ``settings.near_duplicate_cosine``), measured as the quantiser sees the
    vectors: centred per language (translations of one product score far higher there).
    ``same_lang`` keeps pairs in one language only (true duplicates rather than
    translations).  Highest cosine first.
    """
    q = index_quantizer(engine, index)
    if q is None:
        raise LookupError(f"[{index}] has no semantic-id quantiser: run `polyseek models semantic-ids fit "
                          f"--index {index}`")
    threshold = engine.settings.near_duplicate_cosine if min_cosine is None else min_cosine
    title = engine.settings.product_fields.title
    ids, vectors, sources = stored_vectors(engine, index, (LANG_FIELD, title))
    if not ids:
        return []
    depth = max(1, min(level, q.levels))
    langs = [src.get(LANG_FIELD) for src in sources]
    codes = q.code_strings(q.encode(vectors, langs))
    vectors = q.prepare(vectors, langs)  # the cosine below: centred per language, as the codes
    groups: dict[str, list[int]] = {}
    for i, code in enumerate(codes):
        groups.setdefault("-".join(code.split("-")[:depth]), []).append(i)
    out: list[NearDuplicate] = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        sims = vectors[members] @ vectors[members].T
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = members[a], members[b]
                la, lb = sources[i].get(LANG_FIELD), sources[j].get(LANG_FIELD)
                if sims[a, b] >= threshold and (not same_lang or la == lb):
                    out.append(NearDuplicate((ids[i], ids[j]), round(float(sims[a, b]), 4), key, (la, lb),
                                             (sources[i].get(title), sources[j].get(title))))
    out.sort(key=lambda d: -d.cosine)
    return out[:limit]
