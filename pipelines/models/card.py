"""Where a model lives in the model cache and what Polyseek must know to run it.

A model folder (``<model_dir>/<name>/``) holds:

- ``hf/``: Hugging Face format (config.json, model.safetensors, tokenizer.json),
- ``onnx/model.onnx`` (fp32) and ``onnx/model-int8.onnx`` (dynamic int8),
- ``polyseek-model.json``: the :class:`ModelCard` below.

The card is the one documented place for prompts, pooling and normalisation:
the ONNX graph returns the mean-pooled, L2-normalised ``sentence_embedding``
(and, with a sparse head, per-token ``token_weights``); prefixes are added by the
runtime encoder from the card.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

CARD_FILE = "polyseek-model.json"


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
        return ModelCard(**json.loads(self.card_file.read_text()))

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
