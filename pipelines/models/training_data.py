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


def shared_training_pairs(data_dir: Path, *, ikea: bool = True, seed: int = 7) -> list:
    """Contrastive pairs from the *training* split of the shared data (issue 11's recipe).

    - taxonomy (ids with ``id % 5 != 0``): a category leaf in each of the 6 locales ->
      the English category as a product of that type is indexed (leaf, then path); and the
      English leaf -> the same category in one other locale, so documents in every
      language are positives for some query;
    - IKEA ``train``: German/French descriptions -> their English original as indexed
      (first 80 characters as title, then the description), and English -> German/French.

    Same-category pairs share a ``group`` (never each other's negatives).
    """
    import random

    from pipelines.models.finetune import Pair, passage_text
    from pipelines.schema import DEFAULT_PRODUCT_FIELDS as NAMES  # the passages below use the default names

    rng = random.Random(seed)
    tax = {lang: read_taxonomy(data_dir, lang, train_only=True) for lang in TAXONOMY_LOCALES}
    en = tax["en"]
    others = [lang for lang in TAXONOMY_LOCALES if lang != "en"]

    def doc(levels: list[str]) -> str:
        return passage_text({"title": levels[-1], "category": " > ".join(levels)}, NAMES)

    pairs = []
    for cid, levels in en.items():
        for lang in TAXONOMY_LOCALES:
            if cid in tax[lang]:
                pairs.append(Pair(tax[lang][cid][-1], doc(levels), group=f"tax-{cid}", lang=lang, source="taxonomy"))
        target = rng.choice([lang for lang in others if cid in tax[lang]] or ["en"])
        pairs.append(Pair(levels[-1], doc(tax[target][cid]), group=f"tax-{cid}", lang="en", source="taxonomy"))
    if ikea:
        for other in ("de", "fr"):
            english, foreign = read_ikea(data_dir, "train", f"en-{other}")
            for e, f in zip(english, foreign):
                pairs.append(Pair(f, passage_text({"title": e[:80], "description": e}, NAMES), group=f"ikea-{e[:200]}",
                                  lang=other, source="ikea"))
                pairs.append(Pair(e, passage_text({"title": f[:80], "description": f}, NAMES), group=f"ikea-{e[:200]}",
                                  lang="en", source="ikea"))
    rng.shuffle(pairs)
    return pairs
