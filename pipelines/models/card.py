"""Where a model lives in the model cache and what Polyseek must know to run it.

A model folder (``<model_dir>/<name>/``) holds:

- ``hf/``: Hugging Face format (config.json, model.safetensors, tokenizer.json),
- ``onnx/model.onnx`` (fp32) and ``onnx/model-int8.onnx`` (dynamic int8),
- ``polyseek-model.json``: the :class:`ModelCard` below.

The card is the one documented place for prompts, pooling and normalisation:
the ONNX graph returns the mean-pooled, L2-normalised ``sentence_embedding``
(and, with a sparse head, per-token ``token_weights``); prefixes are added by the
runtime encoder from the card.

**Fingerprint.**  A model rebuilt under the same name (a new release of a shipped adapter,
a re-run fine-tune) writes other vectors; an index embedded by the old weights and searched
with query vectors of the new ones ranks badly and says nothing.  The card therefore records
the model's :func:`fingerprint`: a content hash of what a vector depends on, the exported
fp32 ONNX graph with its weights (the int8 graph is quantized from it, so both precisions
share one fingerprint), the tokenizer and the passage and query prompts.  ``export_onnx``
writes it at build time, so reading it costs the card's read; a card written before
fingerprints existed gets it computed from the files when the model loads (about a second for
a 470 MB graph; ``polyseek models build`` records it).  The ONNX export is byte-for-byte
reproducible with the same torch, so rebuilding unchanged weights keeps the fingerprint.
Indices record it beside the model's name (``pipelines.engine.dialect``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

CARD_FILE = "polyseek-model.json"
FINGERPRINT_VERSION = b"polyseek-fingerprint-1"
FINGERPRINT_HEX = 16  # characters of the sha256 kept: 64 bits name one build among a cache's


@dataclass
class ModelCard:
    """How to run one exported model."""

    name: str
    kind: Literal["dense", "cross-encoder"] = "dense"
    source: str = ""
    query_prefix: str = ""
    passage_prefix: str = ""
    pooling: Literal["mean", "cls"] = "mean"
    normalize: bool = True
    max_length: int = 512
    dims: int = 0
    version: str = "1"
    has_sparse_head: bool = False
    fingerprint: str = ""  # :func:`fingerprint` of the exported model ("" before the export)
    extra: dict = field(default_factory=dict)

    @property
    def adapted(self) -> bool:
        """Fine-tuned from another model in the cache (its card names the base)."""
        return "base_model" in self.extra

    @property
    def model_id(self) -> str:
        """The id stamped on every vector this model produced."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelPaths:
    """The files of one model in the cache."""

    root: Path

    @property
    def hf(self) -> Path:
        return self.root / "hf"

    @property
    def onnx_fp32(self) -> Path:
        return self.root / "onnx" / "model.onnx"

    @property
    def onnx_int8(self) -> Path:
        return self.root / "onnx" / "model-int8.onnx"

    @property
    def tokenizer(self) -> Path:
        return self.hf / "tokenizer.json"

    @property
    def card_file(self) -> Path:
        return self.root / CARD_FILE

    def onnx(self, precision: Literal["fp32", "int8"]) -> Path:
        return self.onnx_int8 if precision == "int8" else self.onnx_fp32

    def read_card(self) -> ModelCard:
        if not self.card_file.exists():
            raise FileNotFoundError(f"no model at {self.root} (run `polyseek models import`)")
        data = json.loads(self.card_file.read_text())
        known = ModelCard.__dataclass_fields__
        return ModelCard(**{k: v for k, v in data.items() if k in known})  # a newer card's keys are skipped

    def write_card(self, card: ModelCard) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.card_file.write_text(json.dumps(asdict(card), indent=2, ensure_ascii=False))


def model_paths(model_dir: Path, name: str) -> ModelPaths:
    return ModelPaths(model_dir / name)


def list_models(model_dir: Path) -> list[ModelCard]:
    """Cards of every model in the cache."""
    if not model_dir.exists():
        return []
    return [ModelPaths(p).read_card() for p in sorted(model_dir.iterdir()) if (p / CARD_FILE).exists()]


def fingerprint(paths: ModelPaths, card: ModelCard | None = None) -> str:
    """The content hash of the model at ``paths``: the card's when recorded, else computed from its files.

    sha256 over the fp32 ONNX graph (the int8 graph when only it is there), the tokenizer and the
    card's prompts, cut to :data:`FINGERPRINT_HEX` hex characters.  See the module's notes.
    """
    card = card or paths.read_card()
    if card.fingerprint:
        return card.fingerprint
    return compute_fingerprint(paths, card)


def cached_fingerprint(model_dir: Path, name: str) -> str | None:
    """The fingerprint of the model ``name`` of the cache at ``model_dir``; None when it is not there."""
    paths = model_paths(model_dir, name)
    try:
        return fingerprint(paths)
    except FileNotFoundError:  # no card, or a card without its graph
        return None


def compute_fingerprint(paths: ModelPaths, card: ModelCard) -> str:
    """The fingerprint computed from the files (reads the whole graph: call it at build time)."""
    graph = paths.onnx_fp32 if paths.onnx_fp32.exists() else paths.onnx_int8
    digest = hashlib.sha256(FINGERPRINT_VERSION)
    for path in (graph, paths.tokenizer):
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    for prompt in (card.query_prefix, card.passage_prefix):
        digest.update(b"\0" + prompt.encode("utf-8"))
    return digest.hexdigest()[:FINGERPRINT_HEX]
