"""Product corpora and queries for the speed benchmarks, made from ``../shared/data`` at run time."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from pipelines.models.training_data import TAXONOMY_LOCALES, read_ikea, read_taxonomy

BRANDS = ["Nordvik", "Soleado", "Kaiyo", "Lumière", "Bergmann", "Hanami", "Aurora", "Tianlu"]


def products(n: int, data_dir: Path, seed: int = 5) -> list[dict]:
    """``n`` short (~64-token) multilingual products: taxonomy leaves as titles, IKEA text as descriptions."""
    rng = random.Random(seed)
    leaves = [(lang, levels) for lang in TAXONOMY_LOCALES for levels in read_taxonomy(data_dir, lang).values()]
    en, de = read_ikea(data_dir, "train", "en-de")
    _, fr = read_ikea(data_dir, "train", "en-fr")
    descriptions = {"en": en, "de": de, "fr": fr}
    out = []
    for i, (lang, levels) in zip(range(n), itertools.cycle(leaves)):
        pool = descriptions.get(lang)
        desc = " ".join(rng.choice(pool).split()[:30]) if pool else " ".join(levels)
        out.append({"id": f"b{i}", "title": f"{rng.choice(BRANDS)} {levels[-1]}", "description": desc,
                    "category": " > ".join(levels), "price": round(rng.uniform(5, 500), 2), "lang": lang})
    return out


def queries(n: int, data_dir: Path, seed: int = 9) -> list[str]:
    rng = random.Random(seed)
    leaves = [levels[-1] for lang in TAXONOMY_LOCALES for levels in read_taxonomy(data_dir, lang).values()]
    return rng.sample(leaves, n)
