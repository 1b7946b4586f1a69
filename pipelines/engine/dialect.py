"""What differs between Elasticsearch and OpenSearch, in one class per dialect.

A dialect turns Polyseek's intent (an index for products, a kNN clause, a sparse
clause) into the body the engine understands.  It sends nothing itself: the
:class:`~pipelines.engine.client.EngineClient` and the query service do.
"""

from __future__ import annotations

import copy
import json
import math
from abc import ABC, abstractmethod
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from pipelines.schema import CHUNK_VECTOR, CHUNKS_FIELD, DEFAULT_PRODUCT_FIELDS, VECTOR_FIELD, ProductFields

# the es_templates package's data (the repository's top-level es_templates/ folder, shipped in the wheel)
TEMPLATES: Traversable = files("es_templates")

Body = dict[str, Any]


def template_files(folder: str, suffix: str = ".json") -> list[Traversable]:
    """The files of ``es_templates/<folder>/`` whose name ends in ``suffix``, sorted by name."""
    return sorted((f for f in TEMPLATES.joinpath(folder).iterdir() if f.is_file() and f.name.endswith(suffix)),
                  key=lambda f: f.name)


@cache
def load_template(relpath: str) -> Body:
    """A JSON file from ``es_templates/``, e.g. ``component/query-log.json`` (cached: copy before changing it)."""
    return json.loads(TEMPLATES.joinpath(relpath).read_text(encoding="utf-8"))


def _merge(into: Body, other: Body) -> Body:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


MODEL_META_KEY = "polyseek_model"  # mappings._meta key: the dense model that embedded the index
# mappings._meta key: that model's fingerprint (pipelines.models.card.fingerprint); absent on older indices
FINGERPRINT_META_KEY = "polyseek_model_fingerprint"


def meta_values(mapping_response: Body, key: str) -> dict[str, str]:
    """Physical index -> its ``mappings._meta[key]``, for the indices of a ``GET /{index}/_mapping``
    answer that record one."""
    out = {}
    for index, physical in (mapping_response or {}).items():
        value = (physical.get("mappings", {}).get("_meta") or {}).get(key) if isinstance(physical, dict) else None
        if value:
            out[index] = value
    return out


def models_of(mapping_response: Body) -> set[str]:
    """The dense model names recorded in a ``GET /{index}/_mapping`` answer, one per physical index."""
    return set(meta_values(mapping_response, MODEL_META_KEY).values())


def fingerprints_of(mapping_response: Body) -> dict[str, str]:
    """Physical index -> the fingerprint of the model that embedded it, for the indices of a
    ``GET /{index}/_mapping`` answer that record one (those created before fingerprints record none)."""
    return meta_values(mapping_response, FINGERPRINT_META_KEY)


def sparse_query(field: str, weights: dict[str, float], boost: float = 1.0) -> Body:
    """Dot product of query term weights with the document's ``rank_features`` (OpenSearch's form).

    ``rank_feature`` with a ``linear`` function scores d_t, so a bool/should over the
    query's terms boosted by q_t gives sum(q_t * d_t).  Use :meth:`Dialect.sparse_query`
    for the engine at hand.
    """
    return {"bool": {"should": [
        {"rank_feature": {"field": f"{field}.{term}", "linear": {}, "boost": w * boost}}
        for term, w in weights.items() if w > 0
    ], "minimum_should_match": 1}}


def sparse_term_query(field: str, weights: dict[str, float], boost: float = 1.0) -> Body:
    """Dot product of query term weights with a ``sparse_vector`` field (Elasticsearch's form).

    A ``term`` query on a ``sparse_vector`` field scores the stored weight d_t linearly
    (Lucene's ``FeatureField`` linear query), so boosted ``term`` clauses give
    sum(q_t * d_t) without the x-pack ``sparse_vector`` query.
    """
    return {"bool": {"should": [
        {"term": {field: {"value": term, "boost": w * boost}}}
        for term, w in weights.items() if w > 0
    ], "minimum_should_match": 1}}


class Dialect(ABC):
    """Request shapes for one engine family."""

    name: str

    def product_index_body(self, dims: int, model: str | None = None,
                           fields: ProductFields = DEFAULT_PRODUCT_FIELDS, fingerprint: str | None = None) -> Body:
        """Settings and mappings of a products index, from the component templates.

        ``model`` (the dense model's name in the model cache) is recorded in the mapping's
        ``_meta``, so that workers and the query service embed with the index's own model;
        ``fingerprint`` (that model's content hash) beside it, so that a model rebuilt under the
        same name is told from the one that embedded the index.
        ``fields``: the catalog's product field names; the templates' mappings of the default
        names are given to them.
        """
        body: Body = {}
        for part in ("component/products-text.json", f"{self.name}/products-vectors.json"):
            _merge(body, copy.deepcopy(load_template(part)["template"]))
        props = body["mappings"]["properties"] = fields.rename_properties(body["mappings"]["properties"])
        self._set_dims(props[VECTOR_FIELD], dims)
        if CHUNKS_FIELD in props:
            self._set_dims(props[CHUNKS_FIELD]["properties"][CHUNK_VECTOR], dims)
        if model:
            body["mappings"].setdefault("_meta", {})[MODEL_META_KEY] = model
        if fingerprint:
            body["mappings"].setdefault("_meta", {})[FINGERPRINT_META_KEY] = fingerprint
        return body

    def dead_letter_index_body(self) -> Body:
        return copy.deepcopy(load_template("component/dead-letter.json")["template"])

    @abstractmethod
    def _set_dims(self, field_mapping: Body, dims: int) -> None: ...

    @abstractmethod
    def knn_query(self, field: str, vector: list[float], k: int, num_candidates: int,
                  filter: Body | None = None) -> Body:
        """A query-DSL clause returning the ``k`` nearest documents (scores higher = closer)."""

    @abstractmethod
    def sparse_query(self, field: str, weights: dict[str, float], boost: float = 1.0) -> Body:
        """A query-DSL clause scoring sum(q_t * d_t) over the learned sparse field ``field``."""

    @staticmethod
    @abstractmethod
    def knn_similarity(score: float) -> float:
        """The cosine of query and document behind a kNN hit's engine ``score`` (unit vectors)."""

    def best_chunk_knn_query(self, field: str, chunks_path: str, vector: list[float], k: int,
                             num_candidates: int, filter: Body | None = None) -> Body:
        """kNN over a document vector and its nested chunk vectors; a document scores by its best.

        ``dis_max`` keeps the higher of the document-vector score and the best chunk's
        (``score_mode: max``); both are the same similarity, so they compare.  Indices
        without the nested field answer the first part alone (``ignore_unmapped``).
        The filter runs inside the document-vector search and after the chunk search.
        """
        nested: Body = {"nested": {"path": chunks_path, "score_mode": "max", "ignore_unmapped": True,
                                   "query": self.knn_query(f"{chunks_path}.{field.rsplit('.', 1)[-1]}", vector, k,
                                                           num_candidates)}}
        if filter:
            nested = {"bool": {"must": [nested], "filter": [filter]}}
        return {"dis_max": {"queries": [self.knn_query(field, vector, k, num_candidates, filter), nested]}}


class OpenSearchDialect(Dialect):
    name = "opensearch"

    def _set_dims(self, field_mapping: Body, dims: int) -> None:
        field_mapping["dimension"] = dims

    def knn_query(self, field: str, vector: list[float], k: int, num_candidates: int,
                  filter: Body | None = None) -> Body:
        clause: Body = {"vector": vector, "k": k}
        if filter:
            clause["filter"] = filter
        # the lucene engine explores max(k, ef_search); num_candidates maps to k here
        # when larger, and results are cut to k by the caller's size.
        clause["k"] = max(k, num_candidates) if num_candidates else k
        return {"knn": {field: clause}}

    @staticmethod
    def knn_similarity(score: float) -> float:
        """lucene ``innerproduct`` scores a dot product d as 1 + d (d >= 0), else 1 / (1 - d)."""
        return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score if score > 0 else -1.0

    def sparse_query(self, field: str, weights: dict[str, float], boost: float = 1.0) -> Body:
        return sparse_query(field, weights, boost)


class ElasticsearchDialect(Dialect):
    name = "elasticsearch"

    def _set_dims(self, field_mapping: Body, dims: int) -> None:
        field_mapping["dims"] = dims

    def knn_query(self, field: str, vector: list[float], k: int, num_candidates: int,
                  filter: Body | None = None) -> Body:
        """``knn`` query; the vector is scaled to unit length.

        The templates use ``dot_product`` similarity (Polyseek's encoders write unit vectors),
        which Elasticsearch refuses for a query vector of any other length.  Scaling the
        query changes no ranking; the score is that of the unit vector, (1 + cos) / 2.
        """
        norm = math.sqrt(sum(x * x for x in vector))
        if norm > 0 and abs(norm - 1.0) > 1e-4:
            vector = [x / norm for x in vector]
        clause: Body = {"field": field, "query_vector": vector, "k": k,
                        "num_candidates": max(num_candidates, k)}
        if filter:
            clause["filter"] = filter
        return {"knn": clause}

    @staticmethod
    def knn_similarity(score: float) -> float:
        """``dot_product`` scores a dot product d of unit vectors as (1 + d) / 2."""
        return 2.0 * score - 1.0

    def sparse_query(self, field: str, weights: dict[str, float], boost: float = 1.0) -> Body:
        return sparse_term_query(field, weights, boost)


def dialect_for(name: str) -> Dialect:
    """The dialect object for ``"opensearch"`` or ``"elasticsearch"``."""
    try:
        return {"opensearch": OpenSearchDialect, "elasticsearch": ElasticsearchDialect}[name]()
    except KeyError:
        raise ValueError(f"unknown engine dialect {name!r}") from None
