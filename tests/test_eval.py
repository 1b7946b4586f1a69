"""`polyseek eval` on the CI slice of the dev benchmarks, through the real worker, service and engine."""

from __future__ import annotations

import json

import pytest

from bench.eval_run import run_eval
from tests.conftest import SHARED_DATA


@pytest.mark.skipif(not (SHARED_DATA / "google-product-taxonomy").exists(), reason="../shared/data not present")
def test_taxonomy_xling_small(settings, engine, broker, tmp_path):
    report = run_eval("taxonomy-xling", small=True, data_dir=SHARED_DATA, out_dir=tmp_path, settings=settings)
    results = report["results"]
    assert {"bm25 (rank-bm25)", "bm25", "knn", "rrf", "linear-minmax", "linear-l2_norm", "linear-zscore",
            "hybrid (default)"} <= set(results)
    # cross-lingual: the dense retriever must beat lexical BM25 by a wide margin
    assert results["knn"]["all"]["ndcg@10"] > results["bm25"]["all"]["ndcg@10"] + 0.2
    assert set(results["knn"]["pairs"]) == {"de->en", "fr->en", "es->en", "ja->en", "zh->en"}
    saved = json.loads((tmp_path / "taxonomy-xling-en.json").read_text())
    assert saved["queries"] == 60
    assert (tmp_path / "taxonomy-xling-en.png").stat().st_size > 10_000


@pytest.mark.skipif(not (SHARED_DATA / "ikea-products").exists(), reason="../shared/data not present")
def test_ikea_xling_small(settings, engine, broker, tmp_path):
    report = run_eval("ikea-xling", small=True, data_dir=SHARED_DATA, out_dir=tmp_path, settings=settings)
    pairs = report["results"]["knn"]["pairs"]
    assert set(pairs) == {"de->en", "fr->en", "en->de", "en->fr"}
    # translations are found across languages by the dense retriever
    assert min(p["recall@10"] for p in pairs.values()) > 0.5
