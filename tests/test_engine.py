"""Foundation: the real engine started by the project, templates, bulk, BM25 / kNN / learned sparse.

Runs on either engine (``POLYSEEK_ENGINE``): the expectations that differ come from the dialect.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from pipelines.engine.launcher import LocalEngine
from pipelines.settings import Settings

# what the engine's own type names are for the fields whose type differs per dialect
VECTOR_TYPE = {"opensearch": ("knn_vector", "dimension"), "elasticsearch": ("dense_vector", "dims")}
SPARSE_TYPE = {"opensearch": "rank_features", "elasticsearch": "sparse_vector"}
# modules/plugins the local launcher assembles (analysis and the sparse type come from these)
NEEDED = {"opensearch": ("opensearch-knn", "analysis-common", "mapper-extras"),
          "elasticsearch": ("transport-netty4", "polyseek")}

DOCS = [
    ("a", {"title": "Kabellose Kopfhörer", "title_de": "Kabellose Kopfhörer", "lang": "de",
           "embedding": [1.0, 0.0, 0.0, 0.0], "sparse": {"kopf": 2.0, "hörer": 1.0}, "price": 99.0}),
    ("b", {"title": "无线降噪耳机", "title_zh": "无线降噪耳机", "lang": "zh",
           "embedding": [0.0, 1.0, 0.0, 0.0], "sparse": {"耳机": 3.0}, "price": 120.0}),
    ("c", {"title": "Garden hose 30 m", "title_en": "Garden hose 30 m", "lang": "en",
           "embedding": [0.0, 0.0, 1.0, 0.0], "sparse": {"hose": 1.5}, "price": 25.0}),
]


@pytest.fixture
def products(engine, index_name):
    assert engine.create_products_index(index_name, dims=4) is True
    results = engine.bulk_index(index_name, DOCS, refresh=True)
    assert all(r.ok for r in results), [r.error for r in results]
    return index_name


def test_status_reports_version_and_health(settings):
    status = LocalEngine(settings).status()
    assert status.running and status.health in ("green", "yellow")
    assert status.version == settings.resolved_engine_version
    assert status.name == settings.engine
    for needed in NEEDED[settings.engine]:
        assert needed in status.plugins


def test_stop_of_another_engine_or_version_touches_nothing_running(settings):
    """Processes are found by the state folder: a launcher for another engine/version sees none of ours."""
    mine = LocalEngine(settings)
    assert mine.processes(), "the engine under test was not started by the launcher"
    other = "opensearch" if settings.engine == "elasticsearch" else "elasticsearch"
    for engine, version in ((other, None), (settings.engine, "0.0.1")):
        stranger = LocalEngine(Settings(**{**settings.model_dump(), "engine": engine, "engine_version": version}))
        assert stranger.state_dir != mine.state_dir
        assert not set(stranger.processes()) & set(mine.processes())


@pytest.mark.slow
def test_start_after_the_engine_was_killed_hard(settings):
    """SIGKILL (OOM killer, a restored snapshot) leaves the pid file behind: start launches a fresh node.

    A stale pid file used to read as "the process just launched has died": start gave up a
    second after launching, with a message about a 180 s timeout (clean-clone CI, 2026-11-26).
    """
    local = LocalEngine(settings)
    if local.pid() is None:
        pytest.skip("the engine at the URL was not started by this project's launcher: not ours to kill")
    try:
        for pid in local.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while local.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not local.processes() and local.pid_file.exists(), "the kill left no stale pid file to test with"
        status = local.start()
        assert status.running and status.health in ("green", "yellow")
        assert local.pid() is not None and local.processes()
    finally:
        local.start()  # later tests get their engine back whatever happened above


def test_index_from_template_has_vector_sparse_and_language_fields(engine, products):
    mapping = engine.request("GET", f"/{products}/_mapping")[products]["mappings"]["properties"]
    vector_type, dims_key = VECTOR_TYPE[engine.dialect.name]
    assert mapping["embedding"]["type"] == vector_type and mapping["embedding"][dims_key] == 4
    assert mapping["sparse"]["type"] == SPARSE_TYPE[engine.dialect.name]
    assert mapping["title_de"]["analyzer"] == "german"
    assert mapping["title_zh"]["analyzer"] == "polyseek_cjk"
    assert engine.create_products_index(products, dims=4) is False  # idempotent


def test_german_stemming_bm25(engine, products):
    hits = engine.search(products, {"query": {"match": {"title_de": "Kopfhörern"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["a"]


def test_cjk_bigram_bm25(engine, products):
    hits = engine.search(products, {"query": {"match": {"title_zh": "降噪"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["b"]


def test_knn(engine, products):
    body = {"size": 1, "query": engine.dialect.knn_query("embedding", [0.1, 0.0, 0.9, 0.0], 2, 10)}
    assert engine.search(products, body)["hits"]["hits"][0]["_id"] == "c"


def test_knn_with_filter(engine, products):
    flt = {"range": {"price": {"gte": 50}}}
    body = {"size": 3, "query": engine.dialect.knn_query("embedding", [0.1, 0.0, 0.9, 0.0], 3, 10, flt)}
    assert "c" not in [h["_id"] for h in engine.search(products, body)["hits"]["hits"]]


def test_language_analyzers_are_the_real_ones(engine, products):
    """Stemming and CJK bigrams, never a silent fallback to the standard analyzer."""
    def tokens(field: str, text: str) -> list[str]:
        resp = engine.request("POST", f"/{products}/_analyze", json_body={"field": field, "text": text})
        return [t["token"] for t in resp["tokens"]]

    assert tokens("title_en", "running shoes") == ["run", "shoe"]
    assert tokens("title_de", "Kopfhörern") == ["kopfhor"]
    assert tokens("title_fr", "chaussures") == ["chausur"]
    assert tokens("title_zh", "无线耳机") == ["无线", "线耳", "耳机"]
    assert tokens("title", "Café ＡＢＣ") == ["cafe", "abc"]


def test_learned_sparse(engine, products):
    body = {"query": engine.dialect.sparse_query("sparse", {"耳机": 1.0, "hose": 0.1})}
    hits = engine.search(products, body)["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["b", "c"]
    assert hits[0]["_score"] == pytest.approx(3.0, rel=1e-3)


def test_bulk_is_idempotent(engine, products):
    engine.bulk_index(products, DOCS, refresh=True)
    assert engine.count(products) == 3


def _fake_java_home(root, name: str, version: str, *, javac: bool = True):
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    if javac:
        (home / "bin" / "javac").write_text("")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_java_home_prefers_the_engines_own_major_then_the_oldest_newer(tmp_path, monkeypatch):
    """A unit: which Java runs an engine (no javac needed; ECJ compiles where a JDK lacks it)."""
    from pipelines.engine import launcher

    jdk17 = _fake_java_home(tmp_path, "jdk17", "17.0.15")
    jdk25 = _fake_java_home(tmp_path, "jdk25", "25.0.3")
    runtime21 = _fake_java_home(tmp_path, "runtime21", "21.0.2", javac=False)
    monkeypatch.delenv("OPENSEARCH_JAVA_HOME", raising=False)
    monkeypatch.setenv("JAVA_HOME", str(jdk25))
    monkeypatch.setattr(launcher, "JVM_DIR", tmp_path / "jvm")  # none there
    monkeypatch.setattr(launcher, "_bundled_java_home", lambda: runtime21)
    monkeypatch.setattr(launcher.shutil, "which", lambda name: str(jdk17 / "bin" / "java"))
    settings = Settings(engine_java_home=None)
    assert launcher._find_java_home(settings, 17) == jdk17      # OpenSearch 2.x, Elasticsearch 8.x
    assert launcher._find_java_home(settings, 21) == runtime21  # OpenSearch 3.x, Elasticsearch 9.x
    with pytest.raises(launcher.EngineError, match="no Java 26"):
        launcher._find_java_home(settings, 26)
    assert launcher._find_java_home(Settings(engine_java_home=jdk17), 21) == jdk17  # configured: as it is
