"""Product documents: validation and the engine ``_source``.

A product is schema-tolerant: ``id`` is required, the product fields (``title``,
``description``, ``brand``, ``category`` and ``price``, or the catalog's names for them:
:class:`~pipelines.schema.ProductFields`) must be strings (``price`` a number) when present,
anything else is kept in ``_source`` as it came.  Problems are :class:`DocumentError` with a
reason fit for the dead-letter index.  Every field name is :mod:`pipelines.schema`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pipelines.schema import (
    ANALYZED_LANGUAGES,
    CHUNK_COUNT_FIELD,
    CHUNK_NUMBER,
    CHUNK_VECTOR,
    CHUNKS_FIELD,
    DERIVED_FIELDS,
    ID_FIELD,
    INGESTED_AT_FIELD,
    KEYS_KEY,
    LANG_FIELD,
    MARK_KEY,
    MODEL_FIELD,
    SENT_KEY,
    SOURCE_NAMESPACE,
    SPARSE_FIELD,
    TRUNCATED_FIELD,
    VECTOR_FIELD,
    ProductFields,
    detect_language,
    embedding_text,
    product_fields,
)


class DocumentError(ValueError):
    """A document that cannot be indexed for a reason of its own."""

    def __init__(self, doc_id: str | None, error_type: str, reason: str):
        super().__init__(f"{error_type}: {reason}")
        self.doc_id = doc_id
        self.error_type = error_type
        self.reason = reason


@dataclass
class Product:
    """A validated product ready to embed."""

    id: str
    source: dict[str, Any]  # what the engine indexes at the top level: the document with ``id`` set
    lang: str
    sent: dict[str, Any] | None = None  # the document as its client sent it (default: ``source``)

    def embedding_text(self, fields: ProductFields | None = None) -> str:
        """What the dense and sparse encoders see: title, brand, category, description."""
        return embedding_text(self.source, fields)


def validate(raw: Any, *, max_bytes: int, fields: ProductFields | None = None) -> Product:
    """Check one raw document and return it as a :class:`Product`.

    ``fields``: the catalog's product text fields (default: ``settings.product_fields``).

    The id is ``raw["_id"]`` when the writer gives one (the engine id of a client's write; the
    document as sent is ``raw`` without it), else the document's own ``id``.
    """
    if not isinstance(raw, dict):
        raise DocumentError(None, "parse_exception", f"a document must be a JSON object, got {type(raw).__name__}")
    fields = fields or product_fields()
    doc_id = raw["_id"] if raw.get("_id") is not None else raw.get(ID_FIELD)
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
        raise DocumentError(None, "missing_id", f"document has no '{ID_FIELD}'")
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
        raise DocumentError(str(doc_id), "illegal_argument_exception", "'id' must be a string or an integer")
    doc_id = str(doc_id)
    text = json.dumps(raw, ensure_ascii=False)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (a JSON escape like \ud800): no engine write could carry it
        encodable = doc_id.encode("utf-8", "replace").decode() == doc_id
        raise DocumentError(doc_id if encodable else None, "mapper_parsing_exception",
                            "document holds text that is not valid UTF-8 (a lone surrogate)") from None
    if len(doc_id.encode()) > 512:
        raise DocumentError(doc_id[:64], "illegal_argument_exception", "'id' is longer than 512 bytes")
    if size > max_bytes:
        raise DocumentError(doc_id, "document_too_large", f"document is {size} bytes, the limit is {max_bytes}")
    for field in fields.text_fields:
        value = raw.get(field)
        if value is not None and not isinstance(value, str):
            raise DocumentError(doc_id, "mapper_parsing_exception",
                                f"'{field}' must be a string, got {type(value).__name__}")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise DocumentError(doc_id, "mapper_parsing_exception", f"'{field}' is not valid UTF-8") from None
    for field in fields.number_fields:
        number = raw.get(field)
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))):
            raise DocumentError(doc_id, "mapper_parsing_exception", f"'{field}' must be a number, got {number!r:.40}")
    sent = {k: v for k, v in raw.items() if k != "_id"}
    declared = raw.get(LANG_FIELD)
    lang = declared if isinstance(declared, str) and declared else detect_language(
        " ".join(str(raw.get(f) or "") for f in fields.per_language_fields))
    return Product(id=doc_id, source={**sent, ID_FIELD: doc_id}, lang=lang, sent=sent)


def engine_source(product: Product, vector: list[float], sparse: dict[str, float] | None,
                  model_id: str, truncated: bool, chunks: list[list[float]] | None = None,
                  codes: dict[str, str] | None = None, fields: ProductFields | None = None,
                  fingerprint: str | None = None) -> dict[str, Any]:
    """The ``_source`` written to the engine: the product, per-language text, vectors, provenance.

    Provenance (``model``): the dense and sparse model ids and the ``fingerprint`` of the weights
    that wrote the vectors (:mod:`pipelines.stale_vectors`).

    ``vector`` embeds the first chunk; ``chunks`` the further chunks of a long text, stored
    as nested vectors so that kNN scores the document by its best chunk.  ``codes``: the
    semantic-id fields of ``vector`` when the index has a quantiser
    (:meth:`~pipelines.models.semantic_ids.ResidualQuantizer.fields`).
    """
    fields = fields or product_fields()
    src = {k: v for k, v in product.source.items() if k not in DERIVED_FIELDS}
    src[LANG_FIELD] = product.lang
    if product.lang in ANALYZED_LANGUAGES:
        for field in fields.per_language_fields:
            if src.get(field):
                src[fields.per_language(field, product.lang)] = src[field]
    src[VECTOR_FIELD] = vector
    if chunks:
        src[CHUNKS_FIELD] = [{CHUNK_VECTOR: v, CHUNK_NUMBER: n} for n, v in enumerate(chunks, 1)]
    if sparse:
        src[SPARSE_FIELD] = sparse
    if codes:
        src.update(codes)
    src[MODEL_FIELD] = {"dense": model_id, "sparse": model_id if sparse else None, "fingerprint": fingerprint}
    src[CHUNK_COUNT_FIELD] = 1 + len(chunks or [])
    src[TRUNCATED_FIELD] = truncated
    src[INGESTED_AT_FIELD] = datetime.now(timezone.utc).isoformat()
    sent = product.source if product.sent is None else product.sent
    src[SOURCE_NAMESPACE] = {MARK_KEY: 1, KEYS_KEY: list(sent), SENT_KEY: sent}
    return src


def kept_source(stored: dict[str, Any]) -> dict[str, Any] | None:
    """The document as its client sent it, from a (possibly filtered) stored ``_source`` that
    holds the :data:`SOURCE_NAMESPACE` record; None when it holds none (a document Polyseek did
    not write, or one written before the record existed)."""
    record = stored.get(SOURCE_NAMESPACE)
    if not isinstance(record, dict) or MARK_KEY not in record:
        return None
    sent = record.get(SENT_KEY)
    return dict(sent) if isinstance(sent, dict) else {}


def user_source(stored: dict[str, Any], fields: ProductFields | None = None) -> dict[str, Any]:
    """The product as its client wrote it, from a full stored ``_source``.

    The kept record when there is one; else (documents written before it existed) the stored
    fields less the derived ones: vectors, provenance and the per-language copies
    (``title_<lang>`` equal to ``title``) are recomputed on every write; ``lang`` and ``id`` stay.
    """
    kept = kept_source(stored)
    if kept is not None:
        return kept
    fields = fields or product_fields()
    lang = stored.get(LANG_FIELD)
    derived = {*DERIVED_FIELDS, SOURCE_NAMESPACE}
    if lang in ANALYZED_LANGUAGES:
        derived |= {fields.per_language(f, lang) for f in fields.per_language_fields
                    if fields.per_language(f, lang) in stored and stored.get(fields.per_language(f, lang)) == stored.get(f)}
    return {k: v for k, v in stored.items() if k not in derived}


def merge_partial(current: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``partial`` merged in, as Elasticsearch's partial update does:
    objects on both sides merge recursively, any other value replaces (a new dict)."""
    merged = dict(current)
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_partial(merged[key], value)
        else:
            merged[key] = value
    return merged
