"""Engine round trips of a service-run search, counted on the one engine transport.

The default hybrid search reads its index's model once (kept: :mod:`service.index_models`),
sends its leaves and the hit count in one ``_msearch`` and fetches the page: two round trips,
plus the query-log write in the background.  A reindex's alias switch is seen by the next
search without a mapping read per search.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from bench.runner import serve_in_thread
from pipelines.engine.transport import AsyncEngine
from service.index_models import changes_indices
from tests.conftest import RUN
from tests.test_search_params import PRODUCTS, write_catalog


@pytest.fixture
def engine_calls(monkeypatch) -> list[tuple[str, str]]:
    """Every request of this process's query services to the engine, as (method, path)."""
    calls: list[tuple[str, str]] = []
    request = AsyncEngine.request

    async def counted(self, method: str, path: str, **kw):
        calls.append((method, path))
        return await request(self, method, path, **kw)

    monkeypatch.setattr(AsyncEngine, "request", counted)
    return calls


@pytest.fixture
def service(settings):
    """A query service of the test's own: nothing kept from other tests' searches."""
    url, stop = serve_in_thread(settings)
    yield url
    stop()


@pytest.fixture(scope="module")
def catalog(engine, encoder):
    index = f"test-{RUN}-round-trips"
    write_catalog(engine, index, encoder)
    yield index
    engine.delete_index(index)


def search(url: str, index: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/{index}/_search", json=body, timeout=120)


def test_default_hybrid_search_makes_two_engine_round_trips(settings, catalog, service, engine_calls):
    body = {"query": {"hybrid": {"query": "office chair"}}, "size": 3, "_source": ["title"]}
    first = search(service, catalog, body)  # reads the index's model, loads it
    assert first.status_code == 200, first.text
    assert ("GET", f"/{catalog}/_mapping") in engine_calls
    engine_calls.clear()

    resp = search(service, catalog, body)
    assert resp.status_code == 200, resp.text
    log_write = ("POST", f"/{settings.query_log_index}/_doc")
    searches = [c for c in engine_calls if c != log_write]
    # the leaves (BM25, kNN, exact title) and the hit count in one _msearch, then the page
    assert searches == [("POST", "/_msearch"), ("POST", f"/{catalog}/_search")], engine_calls
    hits = resp.json()["hits"]
    assert hits == first.json()["hits"]
    assert hits["total"]["value"] >= 2 and hits["hits"][0]["_id"].startswith("chair-")
    assert all(set(h["_source"]) == {"title"} for h in hits["hits"])


@pytest.mark.parametrize("dims", [384, 8], ids=["same-dims", "other-dims"])
def test_an_alias_switch_is_seen_by_the_next_search(engine, encoder, catalog, service, engine_calls, dims):
    """After ``polyseek reindex`` switches the alias (here: by hand, behind the service's back), the next
    search embeds with the new index's model: it notices the switch from the hits' ``_index`` (same
    dimensions) or from the engine's refusal of the old model's vector (other dimensions)."""
    alias, new = f"test-{RUN}-switch-{dims}", f"test-{RUN}-switched-{dims}"
    engine.update_aliases([{"add": {"index": catalog, "alias": alias}}])
    body = {"query": {"hybrid": {"query": "office chair"}}, "size": 3}
    assert search(service, alias, body).status_code == 200
    vectors = np.random.default_rng(0).normal(size=(len(PRODUCTS), dims))
    write_catalog(engine, new, encoder, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist(),
                  model="no-such-model")
    engine.update_aliases([{"remove": {"index": catalog, "alias": alias}}, {"add": {"index": new, "alias": alias}}])
    engine_calls.clear()

    resp = search(service, alias, body)
    # the search ran again with the new index's model, which is not on this machine
    assert resp.status_code == 404, resp.text
    assert "Could not find model [no-such-model]" in resp.json()["error"]["reason"]
    assert engine_calls.count(("GET", f"/{alias}/_mapping")) == 1
    engine.delete_index(new)


@pytest.mark.parametrize("method,path,changes", [
    ("PUT", "/products", True), ("DELETE", "/products-2024", True), ("PUT", "/products/_mapping", True),
    ("POST", "/_aliases", True), ("PUT", "/products-1/_alias/products", True),
    ("DELETE", "/products-1/_aliases/products", True), ("POST", "/products/_rollover", True),
    ("GET", "/products", False), ("POST", "/products/_search", False), ("PUT", "/products/_doc/1", False),
    ("POST", "/products/_refresh", False), ("GET", "/products/_mapping", False), ("PUT", "/_cluster/settings", False),
])
def test_index_changes_through_the_service_are_recognised(method, path, changes):
    assert changes_indices(method, path) is changes


def test_concurrent_first_searches_read_the_mapping_once(catalog, service, engine_calls):
    from concurrent.futures import ThreadPoolExecutor

    body = {"retriever": {"standard": {"query": {"match": {"title": "chair"}}}}, "size": 2}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: search(service, catalog, body), range(8)))
    assert all(a.status_code == 200 and a.json()["hits"]["hits"] for a in answers)
    assert engine_calls.count(("GET", f"/{catalog}/_mapping")) == 1, engine_calls
