"""Readers for the shared dev data, with its split rule (training code and benchmarks share them).

Split rule: taxonomy ids with ``id % 5 == 0`` and the IKEA ``val`` split are evaluation-only;
Tatoeba is test-only.  Training code asks for ``train_only=True`` / split ``"train"``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

TAXONOMY_LOCALES = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "ja": "ja-JP", "zh": "zh-CN"}


def is_eval_id(category_id: int) -> bool:
    return category_id % 5 == 0


def read_taxonomy(data_dir: Path, lang: str, *, train_only: bool = False) -> dict[int, list[str]]:
    """``id -> path levels`` for one locale (only training ids with ``train_only``)."""
    path = data_dir / "google-product-taxonomy" / f"taxonomy-with-ids.{TAXONOMY_LOCALES[lang]}.txt"
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        cid, _, rest = line.partition(" - ")
        if train_only and is_eval_id(int(cid)):
            continue
        out[int(cid)] = [p.strip() for p in rest.split(">")]
    return out


def read_ikea(data_dir: Path, split: str, pair: str) -> tuple[list[str], list[str]]:
    """Aligned (english, other) descriptions of ``pair`` (``en-de``/``en-fr``), whitespace-normalised."""
    other = pair.split("-")[1]

    def read(lang: str) -> list[str]:
        with gzip.open(data_dir / "ikea-products" / f"{split}.{pair}.{lang}.gz", "rt", encoding="utf-8") as fh:
            return [" ".join(line.split()) for line in fh]

    return read("en"), read(other)
