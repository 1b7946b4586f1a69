"""The one typed settings object of Polyseek.

Values come, highest first, from keyword arguments, ``POLYSEEK_*`` environment
variables, a TOML file (``$POLYSEEK_CONFIG`` or ``./polyseek.toml``) and the
defaults below.  Every other module asks :func:`get_settings` instead of reading
``os.environ`` itself.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pipelines.schema import ProductFields

Dialect = Literal["opensearch", "elasticsearch"]

# What `polyseek engine start` assembles from Maven Central when engine_version is not set.
DEFAULT_ENGINE_VERSIONS: dict[str, str] = {"opensearch": "3.6.0", "elasticsearch": "9.5.3"}


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "polyseek"


def _config_file() -> Path:
    return Path(os.environ.get("POLYSEEK_CONFIG", "polyseek.toml"))


class Settings(BaseSettings):
    """Everything configurable in Polyseek, flat, with ``POLYSEEK_`` env names."""

    model_config = SettingsConfigDict(env_prefix="POLYSEEK_", extra="ignore")

    # --- engine -----------------------------------------------------------------
    engine: Dialect = Field("opensearch", description="Engine dialect behind the service.")
    engine_url: str = Field("http://127.0.0.1:9200", description="Engine REST endpoint.")
    engine_version: str | None = Field(
        None, description="Engine version the local launcher runs. Default: the engine's entry in "
                          "DEFAULT_ENGINE_VERSIONS (OpenSearch 3.6.0, Elasticsearch 9.5.3).")
    engine_heap: str = Field("768m", description="JVM heap of the local engine (-Xms/-Xmx).")
    engine_java_home: Path | None = Field(None, description="JDK for the local engine.")
    engine_start_timeout_s: float = Field(180.0, description="How long start waits for green.")
    cache_dir: Path = Field(default_factory=_default_cache_dir,
                            description="Downloads, engine homes, model cache (outside the repo).")
    engine_dir: Path | None = Field(
        None, description="Engine homes, data and logs. Default: cache_dir/engine, or "
                          "/var/lib/polyseek/engine when run as root (the engine refuses root and "
                          "runs as the 'polyseek' user, who cannot read /root).")
    engine_user: str = Field("polyseek", description="Unprivileged user the engine runs as under root.")

    # --- broker -------------------------------------------------------------------
    broker_url: str | None = Field(
        None, description="Celery broker. None: a server-less SQLite transport under cache_dir.")
    redis_port: int = Field(6379, description="Port of the local redis the scripts start.")
    queue_visibility_timeout_s: int = Field(
        300, description="Redis: an unacknowledged batch (worker killed) is redelivered after this.")
    ingest_batch_size: int = Field(64, description="Documents per queued batch.")
    ingest_max_retries: int | None = Field(
        None, description="Retries of a batch while the engine is unavailable (None: until it is back).")
    max_document_bytes: int = Field(1_000_000, description="Larger documents are rejected, not cut.")
    status_index: str = Field("polyseek-ingest-status")
    chunk_tokens: int = Field(256, description="Tokens per embedded chunk of a long product text.")
    chunk_overlap: int = Field(32, description="Tokens shared by consecutive chunks.")
    max_chunks: int = Field(16, description="Chunks embedded per document; more is flagged "
                                            "(embedding_truncated) and counted, never silent.")
    encoder_precision: Literal["fp32", "int8"] = Field("int8")
    encoder_threads: int = Field(2, description="onnxruntime intra-op threads per process.")

    # --- indices --------------------------------------------------------------------
    dead_letter_index: str = Field("polyseek-dead-letter")
    query_log_index: str = Field("polyseek-query-log")
    feedback_index: str = Field("polyseek-feedback", description="Clicks/orders against searches "
                                "(POST /_polyseek/feedback); `models finetune --from-query-log` reads it.")

    product_fields: ProductFields = Field(
        default_factory=ProductFields,
        description="Names of the catalog's product text fields (title, description, brand, category), for a "
                    "catalog that calls them otherwise: e.g. POLYSEEK_PRODUCT_FIELDS='{\"description\": \"body\"}'. "
                    "Products indices map them as es_templates maps the default names; the hybrid shorthand's "
                    "fields and the reranker's field follow them unless set (pipelines/schema.py).")

    # --- models ---------------------------------------------------------------------
    model_dir: Path | None = Field(None, description="Model cache; default cache_dir/models.")
    dense_model: str = Field(
        "polyseek-e5-small", description="Dense encoder name in model_dir. Default: multilingual-e5-small with "
        "the shipped catalog adapter (pipelines/models/adapters); 'multilingual-e5-small' is the plain model.")
    dense_dims: int = Field(384)
    semantic_ids_index: str = Field(
        "polyseek-semantic-ids", description="Fitted semantic-id quantisers (codebooks), one document each; an "
        "index records the one that codes it in mappings._meta.polyseek_semantic_ids.")
    semantic_id_levels: int = Field(3, description="Levels of a semantic-id quantiser (coarse to fine).")
    semantic_id_codes: int = Field(
        256, description="Codes per level (fewer for a small catalog: at least max(4, number of languages) "
        "documents per code).")
    near_duplicate_cosine: float = Field(
        0.6, description="Near-duplicates: same level-1 semantic id and at least this cosine between the vectors "
        "centred per language (demo catalog: precision 1.0, recall 0.92 of same-product pairs; "
        "bench/semantic_ids.py).")

    @property
    def resolved_engine_version(self) -> str:
        """The version the local launcher runs: ``engine_version``, or the engine's default."""
        return self.engine_version or DEFAULT_ENGINE_VERSIONS[self.engine]

    @property
    def resolved_engine_dir(self) -> Path:
        """Folder holding engine homes and each version's data and logs."""
        if self.engine_dir:
            return self.engine_dir
        if os.geteuid() == 0:
            return Path("/var/lib/polyseek/engine")
        return self.cache_dir / "engine"

    # --- query service ---------------------------------------------------------------
    service_host: str = Field("127.0.0.1")
    service_port: int = Field(9400)
    api_keys: list[str] = Field(default_factory=list,
                                description="Accepted keys (Authorization: ApiKey <key>); empty = auth off.")
    index_allow_list: list[str] = Field(default_factory=list,
                                        description="fnmatch patterns of indices clients may touch; empty = all.")
    allow_scripts: bool = Field(False, description="Pass scripts and script endpoints through to the engine.")
    allow_admin_passthrough: bool = Field(
        False, description="Pass cluster settings, shutdown, index deletion and other admin calls through.")
    hybrid_fields: list[str] = Field(
        default_factory=lambda data: data["product_fields"].bm25_fields(),
        description="BM25 fields of the hybrid shorthand. Default: title^3, title_*^3, brand.text^2, category^2, "
                    "description, description_* (under the names of product_fields).")
    rank_window_size: int = Field(100)
    hybrid_num_candidates: int = Field(
        1000, description="Candidates of the hybrid shorthand's kNN leaf (Elasticsearch num_candidates; "
                          "OpenSearch's lucene engine explores max(k, this)). On OpenSearch 3.6 (Lucene 10.4) a beam "
                          "of 100 missed the exact nearest document often enough to cost 6 nDCG@10 points on the "
                          "taxonomy-mono pool (12.9k vectors); 1000 finds 99.9% of the exact top 10 (bench/README).")
    rrf_rank_constant: int = Field(60)
    # Defaults fitted on training queries with the shipped adapter (`python -m bench.tune_fusion --offline`,
    # bench/README.md, "The lexical anchor").  BM25 counts for a query only when kNN backs its top hit (within
    # gate_margin cosine of kNN's best) or the query is a document's whole title (the exact leaf); then documents in
    # that evidence's language gain weights['language']: a shopper whose language has the product sees its listings
    # in that language before other languages' versions.  Without that evidence (a cross-lingual query, IKEA's
    # descriptions) the hybrid is kNN plus the exact leaf.  The language weight trades the monolingual set against
    # language-agnostic ranking of a mixed pool (dev, real stack: 0.5 -> taxonomy-mono 0.8142, BM25 0.8133, LAReQA
    # mAP@20 0.127; 1.0 -> 0.8247; kNN alone 0.640 / 0.318): 1.0 is the training optimum and the only setting that
    # clearly beats BM25 monolingually; `weights.language: 0` per request ranks language-agnostically.  The sparse
    # leaf is off: it beats BM25 by less than 2 points on every dev set.
    hybrid_fusion: Literal["rrf", "linear"] = Field("linear", description="Fusion of the hybrid shorthand.")
    hybrid_weights: dict[str, float] = Field(
        default_factory=lambda: {"bm25": 1.0, "knn": 1.0, "sparse": 0.0, "exact": 1.0, "language": 1.0},
        description="Per-leaf weights of the hybrid shorthand (bm25, knn, sparse, exact: the query is a "
                    "document's whole title); 0 leaves a leaf out.  language: fused score added to documents "
                    "in the shopper's language while the gate is open.")
    hybrid_normalizer: Literal["none", "minmax", "l2_norm", "zscore"] = Field(
        "minmax", description="Score normalizer of each leaf when hybrid_fusion is linear.")
    hybrid_gate_k: int = Field(
        0, description="Query-adaptive rule of the hybrid shorthand: BM25/sparse count for a query when kNN "
                       "ranks their top hit in its top k (0: this rule off).")
    hybrid_gate_margin: float | None = Field(
        0.0, description="Query-adaptive rule of the hybrid shorthand: BM25/sparse count for a query when their "
                          "top hit's kNN cosine is within this margin of kNN's best, or when the exact-title leaf "
                          "has a hit (None: this rule off).")
    hybrid_exact_field: str | None = Field(
        default_factory=lambda data: data["product_fields"].exact_field,
        description="Keyword field (normalised title) of the hybrid shorthand's exact-title leaf (weights['exact']); "
                    "None: no such leaf. Default: title.exact (under product_fields' title).")
    hybrid_within_knn: bool = Field(
        False, description="Hybrid shorthand: BM25/sparse only reorder kNN's candidates and add none.")
    # `make models` builds the shipped cross-encoder `polyseek-reranker`; it stays off by default because on the dev
    # sets it adds 3.5 nDCG@10 points to the hybrid monolingually but loses 2.4 on IKEA (bench/README.md).
    reranker_model: str | None = Field(None, description="Cross-encoder in model_dir (e.g. polyseek-reranker); "
                                                         "None = no rerank by default.")
    rerank_window: int = Field(20)
    rerank_field: str = Field(
        default_factory=lambda data: data["product_fields"].title,
        description="Document field the cross-encoder reads (with category and description). Default: the title.")
    stage_timeout_s: float = Field(
        120.0, description="Upper bound of the engine's answer to each engine call of a search (the wait for a free "
                           "connection is not counted); a timeout answers 504 and does not open the circuit. "
                           "bench.load, 200 clients on 2 cores: at 10 s and 30 s abandoned engine calls snowballed "
                           "(1-3% 504s, p95 50 s); at 120 s none timed out and p95 was 19 s.")
    index_model_ttl_s: float = Field(
        60.0, description="How long the query service keeps an index's model (read from its mapping) without "
                          "reading it again; a reindex's alias switch is seen sooner, by the next search's hits "
                          "(service/index_models.py).")
    max_request_bytes: int = Field(100 * 1024 * 1024)
    query_log: bool = Field(True)

    @property
    def resolved_broker_url(self) -> str:
        """The broker URL; without one, a server-less SQLite transport under cache_dir."""
        return self.broker_url or f"sqla+sqlite:///{self.cache_dir / 'broker.sqlite'}"

    @property
    def result_backend_url(self) -> str:
        if self.broker_url and self.broker_url.startswith("redis"):
            return self.broker_url
        return f"db+sqlite:///{self.cache_dir / 'results.sqlite'}"

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.cache_dir / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return init_settings, env_settings, toml


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` to re-read)."""
    return Settings()
