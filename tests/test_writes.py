"""Writes through the service keep Elasticsearch's contract (README "Write semantics").

Differential: the same sequence of write requests is sent to the engine directly (into a
products index, so shards and versions line up) and through the service; status, ``result``,
``_version``, ``_seq_no``, ``forced_refresh`` and error types must match, and what a GET
returns afterwards too.  The synchronous path needs no worker; the queued-mode test does.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from tests.conftest import RUN

NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture
def pair(engine, index_name):
    """An index written straight to the engine and one written through the service (both products indices)."""
    direct, served = f"{index_name}-e", f"{index_name}-s"
    engine.create_products_index(direct)
    yield direct, served
    for name in (direct, served):
        engine.delete_index(name)


def send(base: str, method: str, path: str, body: Any = None, params: dict | None = None,
         headers: dict | None = None) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.request(method, base + path, content=body, params=params,
                             headers={**NDJSON, **(headers or {})}, timeout=300)
    if isinstance(body, list):  # NDJSON lines
        content = ("\n".join(json.dumps(line, ensure_ascii=False) for line in body) + "\n").encode()
        return httpx.request(method, base + path, content=content, params=params,
                             headers={**NDJSON, **(headers or {})}, timeout=300)
    return httpx.request(method, base + path, json=body, params=params, headers=headers, timeout=300)


WRITE_KEYS = ("result", "_version", "_seq_no", "_primary_term", "forced_refresh", "_shards", "status", "found",
              "_routing", "_id")


def comparable(data: Any, index: str) -> Any:
    """The parts of a write or GET answer that must match; index names replaced by ``<i>``."""
    if not isinstance(data, dict):
        return data
    if "error" in data:
        err = data["error"]
        if isinstance(err, dict):
            reason = re.sub(r"^\[\d+:\d+\] ", "", str(err.get("reason")))  # no parser positions
            return {"error": err.get("type"), "reason": reason.replace(index, "<i>"),
                    "status": data.get("status")}
    if "items" in data:
        return {"errors": data["errors"], "items": [
            {action: comparable(body, index) for action, body in item.items()} for item in data["items"]]}
    return {k: data[k] for k in WRITE_KEYS if k in data}


def user_fields(served: dict, direct: dict) -> dict:
    """The service's ``_source`` on the keys the engine's has (the service adds derived fields)."""
    return {k: served.get(k) for k in direct}


def run_both(eng: str, svc: str, pair: tuple[str, str], steps: list[tuple]) -> None:
    direct, served = pair
    for n, (method, path, body, params) in enumerate(steps):
        a = send(eng, method, path.format(i=direct), body, params)
        b = send(svc, method, path.format(i=served), body, params)
        assert b.status_code == a.status_code, (n, method, path, a.text, b.text)
        da, db = comparable(a.json(), direct), comparable(b.json(), served)
        if "items" in da:  # item by item, for a readable failure
            for k, (ia, ib) in enumerate(zip(da["items"], db["items"])):
                assert ib == ia, (n, path, k)
        assert db == da, (n, method, path)
        da, db = a.json(), b.json()
        if method == "GET" and da.get("found"):
            assert user_fields(db["_source"], da["_source"]) == da["_source"], (n, da, db)


def test_single_document_writes_match_the_engine(eng, svc, pair):
    chair = {"title": "Blue office chair", "price": 10}
    run_both(eng, svc, pair, [
        ("PUT", "/{i}/_doc/1", {"title": "Blue office chair"}, None),
        ("GET", "/{i}/_doc/1", None, None),  # real-time GET right after the write
        ("PUT", "/{i}/_doc/1", chair, None),  # updated, version 2
        ("PUT", "/{i}/_create/1", chair, None),  # 409 version_conflict_engine_exception
        ("POST", "/{i}/_doc/2", {"title": "Red lamp"}, {"op_type": "create"}),
        ("POST", "/{i}/_doc/2", {"title": "Red lamp"}, {"op_type": "create"}),  # 409
        ("PUT", "/{i}/_doc/3", {"title": "Garden hose"}, {"version": "5", "version_type": "external"}),
        ("PUT", "/{i}/_doc/3", {"title": "Garden hose"}, {"version": "4", "version_type": "external"}),  # 409
        ("PUT", "/{i}/_doc/4", {"title": "Standing desk"}, {"routing": "r1", "refresh": "true"}),
        ("GET", "/{i}/_doc/4", None, {"routing": "r1"}),
        ("PUT", "/{i}/_doc/1", chair, {"if_seq_no": "0", "if_primary_term": "1"}),  # stale: 409
        ("PUT", "/{i}/_doc/5", {"title": "Desk lamp"}, {"refresh": "wait_for"}),
        ("POST", "/{i}/_update/1", {"doc": {"price": 12, "brand": "Nordvik"}}, None),
        ("POST", "/{i}/_update/1", {"doc": {"price": 12}}, None),  # noop
        ("POST", "/{i}/_update/missing", {"doc": {"price": 1}}, None),  # 404 document_missing_exception
        ("POST", "/{i}/_update/6", {"doc": {"title": "Sofa"}, "doc_as_upsert": True}, None),  # 201 created
        ("POST", "/{i}/_update/7", {"doc": {"title": "x"}, "upsert": {"title": "Armchair"}}, {"refresh": "true"}),
        ("PUT", "/{i}/_doc/8", {"title": "Rug"}, {"require_alias": "true"}),  # 404: not an alias
        ("GET", "/{i}/_doc/1", None, None),
        ("GET", "/{i}/_doc/7", None, None),
        ("DELETE", "/{i}/_doc/1", None, None),
        ("GET", "/{i}/_doc/1", None, None),
        ("POST", "/{i}/_refresh", None, None),
        ("GET", "/{i}/_count", None, None),
    ])


def test_bulk_matches_the_engine_in_order(eng, svc, pair):
    ops = [{"index": {"_id": "10"}}, {"title": "Oak table"},
           {"delete": {"_id": "10"}},  # after the index of the same id: it ends deleted
           {"index": {"_id": ""}}, {"title": "No id"},  # item 400, errors: true
           {"create": {"_id": "11"}}, {"title": "Bar stool"},
           {"create": {"_id": "11"}}, {"title": "Bar stool again"},  # 409
           {"update": {"_id": "12"}}, {"doc": {"title": "x"}},  # 404
           {"index": {"_id": "13", "version": 5, "version_type": "external"}}, {"title": "Frying pan"},
           {"update": {"_id": "13"}}, {"doc": {"price": 39}},  # reads the index just above
           {"index": {"_id": "14", "routing": "r2"}}, {"title": "Earbuds"},
           {"update": {"_id": "14", "routing": "r2", "retry_on_conflict": 2}}, {"doc": {"price": 79}},
           {"index": {"_id": "15"}}, {"title": "Headphones"},
           {"update": {"_id": "15"}}, {"doc": {"title": "Headphones"}}]  # noop
    run_both(eng, svc, pair, [
        ("POST", "/{i}/_bulk", ops, {"refresh": "true"}),
        ("GET", "/{i}/_doc/10", None, None),
        ("GET", "/{i}/_doc/13", None, None),
        ("GET", "/{i}/_doc/14", None, {"routing": "r2"}),
        ("GET", "/{i}/_count", None, None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": "16"}}, {"title": "Kettle"}], None),  # no refresh
        ("GET", "/{i}/_doc/16", None, None),
    ])


def test_request_level_errors_match_the_engine(eng, svc, pair, engine):
    run_both(eng, svc, pair, [
        ("POST", "/{i}/_bulk", [{"index": {"_id": "1", "foo": 1}}, {"title": "x"}], None),
        ("POST", "/{i}/_bulk", [{"update": {"_id": "1", "version": 3}}, {"doc": {"title": "x"}}], None),
        ("POST", "/{i}/_bulk", [{"update": {"_id": "1"}}, {"doc": {"title": "x"}, "foo": 1}], None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": "x" * 513}}, {"title": "x"}], None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": {"a": 1}}}, {"title": "x"}], None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": "1", "_index": ["other"]}}, {"title": "x"}], None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": "1", "version_type": "bogus", "version": 2}}, {"title": "x"}], None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": "1", "if_primary_term": 1}}, {"title": "x"}], None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": "1", "if_seq_no": 1}}, {"title": "x"}], None),
        ("POST", "/{i}/_bulk", [{"delete": {"_id": "1", "version": 2}}], None),
        ("POST", "/{i}/_bulk", [{"index": {"_id": "1", "version_type": "external"}}, {"title": "x"}], None),
        ("PUT", "/{i}/_doc/1", {"title": "x"}, {"foo": "1"}),
        ("PUT", "/{i}/_doc/1", {"title": "x"}, {"op_type": "upsert"}),
        ("PUT", "/{i}/_doc/1", {"title": "x"}, {"version": "3"}),
        ("PUT", "/{i}/_doc/1", b"", None),
        ("POST", "/{i}/_update/1", b"", None),
        ("POST", "/{i}/_bulk", b"", None),
        ("POST", "/{i}/_bulk", b"\n\n", None),
    ])
    assert not engine.index_exists(pair[1])  # refused before the service created anything


def test_elasticsearch_client_contract(svc, index_name, engine):
    from elasticsearch import ConflictError, Elasticsearch, NotFoundError

    es = Elasticsearch(svc, request_timeout=300)
    try:
        first = es.index(index=index_name, id="a", document={"title": "Wireless headphones"})
        assert first["result"] == "created" and first["_version"] == 1 and first.meta.status == 201
        assert set(first.body) == {"_index", "_id", "_version", "result", "_shards", "_seq_no", "_primary_term"}
        assert es.get(index=index_name, id="a")["_source"]["title"] == "Wireless headphones"  # no refresh needed
        again = es.index(index=index_name, id="a", document={"title": "Wireless headphones", "price": 99.0},
                         refresh=True)
        assert again["result"] == "updated" and again["_version"] == 2 and again["forced_refresh"] is True
        assert es.search(index=index_name, query={"match": {"title": "headphones"}})["hits"]["total"]["value"] == 1
        with pytest.raises(ConflictError):
            es.create(index=index_name, id="a", document={"title": "Overwritten?"})
        assert es.get(index=index_name, id="a")["_source"]["price"] == 99.0  # not overwritten
        updated = es.update(index=index_name, id="a", doc={"title": "Kabellose Kopfhörer mit Bluetooth"})
        assert updated["result"] == "updated" and updated["_version"] == 3
        # _source_includes=*: Elasticsearch 9 leaves vectors out of _source unless asked
        src = engine.request("GET", f"/{index_name}/_doc/a", params={"_source_includes": "*"})["_source"]
        assert src["price"] == 99.0 and src["lang"] == "de" and src["title_de"].startswith("Kabellose")
        assert "title_en" not in src and len(src["embedding"]) == 384  # re-embedded, derived fields recomputed
        with pytest.raises(NotFoundError):
            es.update(index=index_name, id="nope", doc={"title": "x"})
        resp = es.bulk(operations=[{"index": {"_index": index_name, "_id": "b"}}, {"title": {"not": "a string"}},
                                   {"index": {"_index": index_name, "_id": "c"}}, {"title": "Garden hose"}])
        assert resp["errors"] is True
        assert resp["items"][0]["index"]["status"] == 400 and "title" in resp["items"][0]["index"]["error"]["reason"]
        assert resp["items"][1]["index"]["status"] == 201
    finally:
        engine.delete_index(index_name)


# documents as clients send them: a user's own `id` differing from the _id, a `lang` that is not a
# language code, a field named like a derived one (`model`), none of them, nested objects
SENT = {
    "1": {"id": "user-own-id", "lang": 7, "title": "Kabellose Kopfhörer mit Geräuschunterdrückung",
          "description": "Bluetooth-Kopfhörer, 30 Stunden Akku.", "tags": ["audio", "bt"], "dims": {"w": 18}},
    "2": {"title": "Garden hose 30 m", "price": 29.0},
    "3": {"title": "Poêle antiadhésive 28 cm", "model": "X-200", "brand": "Lumière"},
}


@pytest.fixture(scope="module")
def as_sent(svc, engine):
    """An index written through the service with a stock client (index with and without ids,
    a partial update); yields the client, the index and each document as its client last wrote it."""
    from elasticsearch import Elasticsearch

    es = Elasticsearch(svc, request_timeout=300)
    index = f"test-{RUN}-as-sent"
    for doc_id, doc in SENT.items():
        es.index(index=index, id=doc_id, document=doc)
    auto = es.index(index=index, document={"title": "Office chair"}, refresh=True)["_id"]
    es.update(index=index, id="2", doc={"color": "green"}, refresh=True)
    yield es, index, {**SENT, "2": {**SENT["2"], "color": "green"}, auto: {"title": "Office chair"}}
    engine.delete_index(index)


def _by_id(hits: list[dict]) -> dict[str, dict]:
    return {h["_id"]: h["_source"] for h in hits}


def _scroll_all(es, index: str) -> dict[str, dict]:
    page = es.search(index=index, query={"match_all": {}}, size=1, scroll="1m", sort=["_doc"])
    out = _by_id(page["hits"]["hits"])
    while page["hits"]["hits"]:
        page = es.scroll(scroll_id=page["_scroll_id"], scroll="1m")
        out |= _by_id(page["hits"]["hits"])
    es.clear_scroll(scroll_id=page["_scroll_id"])
    return out


MATCH_ALL_RETRIEVER = {"standard": {"query": {"match_all": {}}}}
READ_PATHS = {  # each answers {id: _source} for every document of the index
    "get": lambda es, i, ids: {d: es.get(index=i, id=d)["_source"] for d in ids},
    "get_source": lambda es, i, ids: {d: es.get_source(index=i, id=d).body for d in ids},
    "mget": lambda es, i, ids: _by_id(es.mget(index=i, ids=ids)["docs"]),
    "search (passed through)": lambda es, i, ids: _by_id(es.search(index=i, query={"match_all": {}})["hits"]["hits"]),
    "search (retriever, service-run)": lambda es, i, ids: _by_id(
        es.search(index=i, retriever=MATCH_ALL_RETRIEVER)["hits"]["hits"]),
    "msearch (engine and service items)": lambda es, i, ids: [_by_id(r["hits"]["hits"]) for r in es.msearch(searches=[
        {"index": i}, {"query": {"match_all": {}}}, {"index": i}, {"retriever": MATCH_ALL_RETRIEVER}])["responses"]],
    "scroll": lambda es, i, ids: _scroll_all(es, i),
}


@pytest.mark.parametrize("path", list(READ_PATHS))
def test_source_is_what_the_client_sent(as_sent, path):
    """Every read path answers the ``_source`` a stock client wrote: no ``id``, ``lang``,
    ``title_<lang>``, vectors or provenance added; the client's own ``id``/``lang``/``model`` as sent."""
    es, index, sent = as_sent
    got = READ_PATHS[path](es, index, list(sent))
    assert got == ([sent, sent] if path.startswith("msearch") else sent)


def test_source_of_a_hybrid_search_is_what_was_sent(as_sent, engine):
    es, index, sent = as_sent
    # vectors named: Elasticsearch 9 leaves them out of a stored `_source` unless included by name
    stored = engine.request("GET", f"/{index}/_doc/1", params={"_source_includes": "id,lang,embedding"})["_source"]
    assert stored["id"] == "1" and stored["lang"] == "de" and len(stored["embedding"]) == 384  # what searches read
    hits = _by_id(es.search(index=index, query={"hybrid": {"query": "Kopfhörer"}}, size=10)["hits"]["hits"])
    assert "1" in hits and hits == {k: sent[k] for k in hits}
    collapsed = es.search(index=index, query={"hybrid": {"query": "hose"}}, collapse={
        "field": "lang", "inner_hits": {"name": "same", "size": 5}})["hits"]["hits"]
    assert all(h["_source"] == sent[h["_id"]] for c in collapsed for h in c["inner_hits"]["same"]["hits"]["hits"])


@pytest.mark.parametrize("query", [{"match_all": {}}, {"hybrid": {"query": "hose"}}], ids=["engine", "hybrid"])
def test_source_filters_apply_to_what_was_sent(as_sent, query):
    """``_source`` includes/excludes (URL and body, ``top_hits``, ``_mget`` docs) filter the document
    as sent: the client's own ``id``/``lang``/``model``, nothing derived."""
    es, index, sent = as_sent
    assert es.get(index=index, id="1", source_includes=["id", "lang"])["_source"] == {"id": "user-own-id", "lang": 7}
    assert es.get(index=index, id="2", source_includes=["id", "lang"])["_source"] == {}
    assert es.get(index=index, id="1", source_excludes=["tags", "dims.*"])["_source"] == {
        k: v for k, v in sent["1"].items() if k != "tags"} | {"dims": {}}
    assert "_source" not in es.get(index=index, id="1", source=False)
    assert _by_id(es.mget(docs=[{"_index": index, "_id": "1", "_source": ["id", "lang"]}])["docs"]) == {
        "1": {"id": "user-own-id", "lang": 7}}
    hits = _by_id(es.search(index=index, query=query, source=["model", "lang"])["hits"]["hits"])
    assert hits["3"] == {"model": "X-200"} and hits.get("2", {}) == {}
    hits = _by_id(es.search(index=index, query=query, source_excludes=["title"])["hits"]["hits"])
    assert hits["3"] == {"model": "X-200", "brand": "Lumière"}
    top = es.search(index=index, query=query, size=0, aggs={
        "top": {"top_hits": {"size": 10, "_source": ["id", "model"]}}})["aggregations"]["top"]
    assert _by_id(top["hits"]["hits"])["3"] == {"model": "X-200"}


def test_source_as_sent_under_filter_path_and_explain(as_sent, svc):
    """``filter_path`` is applied to the answer as the client sees it; ``_explain`` answers the sent document."""
    es, index, sent = as_sent
    resp = httpx.get(f"{svc}/{index}/_doc/1", params={"filter_path": "_source.id,_source.lang,found"})
    assert resp.json() == {"found": True, "_source": {"id": "user-own-id", "lang": 7}}
    resp = httpx.post(f"{svc}/{index}/_search", params={"filter_path": "hits.hits._source.model"},
                      json={"query": {"ids": {"values": ["3"]}}})
    assert resp.json() == {"hits": {"hits": [{"_source": {"model": "X-200"}}]}}
    resp = httpx.post(f"{svc}/{index}/_explain/2", params={"_source": "true"}, json={"query": {"match_all": {}}})
    assert resp.json()["get"]["_source"] == sent["2"]


def test_documents_polyseek_did_not_write_are_answered_as_stored(svc, engine, index_name):
    """An index written straight to the engine (no kept record): every read answers its ``_source``
    as stored, filters included, a field named ``embedding`` or ``lang`` too."""
    doc = {"embedding": [0.5, 1.5], "lang": "xx", "id": "own", "nested": {"a": 1, "b": 2}}
    engine.request("PUT", f"/{index_name}/_doc/1", params={"refresh": "true"}, json_body=doc)
    try:
        assert httpx.get(f"{svc}/{index_name}/_doc/1").json()["_source"] == doc
        assert httpx.get(f"{svc}/{index_name}/_source/1", params={"_source_includes": "nested.a,lang"}).json() == {
            "lang": "xx", "nested": {"a": 1}}
        hits = httpx.post(f"{svc}/{index_name}/_search", json={"_source": {"excludes": ["nested.*", "id"]}}).json()
        assert hits["hits"]["hits"][0]["_source"] == {"embedding": [0.5, 1.5], "lang": "xx", "nested": {}}
        hit = httpx.post(f"{svc}/{index_name}/_search", json={"_source": False, "fields": ["*"]}).json()
        hit = hit["hits"]["hits"][0]
        assert "_source" not in hit and {"lang", "id", "nested.a"} <= set(hit["fields"])
    finally:
        engine.delete_index(index_name)


@pytest.mark.parametrize("query", [{"match_all": {}}, {"hybrid": {"query": "hose"}}], ids=["engine", "hybrid"])
def test_wildcard_fields_answer_the_clients_fields(as_sent, query):
    """``fields: ["*"]`` (as Kibana's Discover asks) answers the fields the client sent, not what Polyseek
    derived; a derived field named exactly (``docvalue_fields: ["lang"]``) is answered."""
    es, index, sent = as_sent
    for source in (False, True):
        resp = es.search(index=index, query=query, fields=["*"], docvalue_fields=["lang"], source=source, size=10)
        for hit in resp["hits"]["hits"]:
            roots = {k.split(".")[0] for k in hit["fields"]}
            assert roots <= set(sent[hit["_id"]]) | {"lang"}, hit["fields"]
            assert {"title"} <= roots and hit["fields"]["lang"]
            assert ("_source" in hit) is source and hit.get("_source", sent[hit["_id"]]) == sent[hit["_id"]]


def test_derived_fields_on_request(as_sent):
    """Named vector fields (as Elasticsearch 9 answers them), ``exclude_vectors: false`` and
    ``docvalue_fields`` give what Polyseek derived."""
    es, index, _ = as_sent
    asked = es.get(index=index, id="1", source_includes=["embedding", "lang", "model"])["_source"]
    assert len(asked["embedding"]) == 384 and asked["lang"] == "de" and asked["model"]["dense"]
    for query in ({"ids": {"values": ["1"]}}, {"hybrid": {"query": "Kopfhörer"}}):
        full = es.search(index=index, query=query, source={"exclude_vectors": False})["hits"]["hits"]
        full = _by_id(full)["1"]
        assert len(full["embedding"]) == 384 and full["id"] == "1" and "polyseek" not in full
    hit = es.search(index=index, query={"ids": {"values": ["1"]}}, docvalue_fields=["lang"],
                    stored_fields=["_none_"], source=False)["hits"]["hits"][0]
    assert hit["fields"]["lang"] == ["de"] and "_source" not in hit


def test_refused_by_name(svc, index_name, engine):
    try:
        resp = send(svc, "POST", f"/{index_name}/_update/1", {"script": {"source": "ctx._source.x = 1"}})
        assert resp.status_code == 400 and "script" in resp.json()["error"]["reason"]
        resp = send(svc, "POST", f"/{index_name}/_update/1", {"doc": {"title": "x"}}, {"_source": "true"})
        assert resp.status_code == 400 and "[_source]" in resp.json()["error"]["reason"]
        resp = send(svc, "PUT", f"/{index_name}/_doc/1", {"title": "x"}, headers={"x-polyseek-write": "later"})
        assert resp.status_code == 400 and resp.json()["error"]["type"] == "illegal_argument_exception"
        assert not engine.index_exists(index_name)
    finally:
        engine.delete_index(index_name)


def test_queued_mode_validates_now_and_keeps_per_id_order(worker, svc, index_name, engine):
    queued = {"x-polyseek-write": "queued"}
    ops = [{"index": {"_id": "q1"}}, {"title": "Wireless headphones"},
           {"index": {"_id": "q2"}}, {"title": "Garden hose"},
           {"index": {"_id": ""}}, {"title": "No id"},
           {"index": {"_id": "q3"}}, {"title": ["not", "a", "string"]},
           {"index": {"_id": "q4"}}, {"title": "Office chair"},
           {"delete": {"_id": "q4"}},  # q4 runs synchronously, in order: it ends deleted
           {"create": {"_id": "q5"}}, {"title": "Desk lamp"},
           {"index": {"_index": index_name.upper(), "_id": "q7"}}, {"title": "Kettle"}]  # engine refuses the name
    try:
        resp = send(svc, "POST", f"/{index_name}/_bulk", ops, headers=queued)
        assert resp.status_code == 200, resp.text
        items = [next(iter(item.values())) for item in resp.json()["items"]]
        assert resp.json()["errors"] is True
        assert [i["status"] for i in items] == [202, 202, 400, 400, 201, 200, 201, 400]
        assert items[-1]["error"]["type"] == "invalid_index_name_exception"
        assert items[0]["result"] == "queued" and "_version" not in items[0]
        single = send(svc, "PUT", f"/{index_name}/_doc/q6", {"title": "Frying pan"}, headers=queued)
        assert single.status_code == 202 and single.json()["result"] == "queued"
        # a GET of a just-queued id waits for its batch, as the engine's real-time GET finds a written one
        assert send(svc, "GET", f"/{index_name}/_doc/q6").json()["_source"]["title"] == "Frying pan"
        assert send(svc, "GET", f"/{index_name}/_doc/q4").json()["found"] is False
        assert send(svc, "GET", f"/{index_name}/_doc/q3").json()["found"] is False
        # queued then deleted by a later request: the delete waits for the batch, the document stays deleted
        send(svc, "PUT", f"/{index_name}/_doc/q8", {"title": "Oak table"}, headers=queued)
        assert send(svc, "DELETE", f"/{index_name}/_doc/q8").json()["result"] == "deleted"
        send(svc, "PUT", f"/{index_name}/_doc/q9", {"title": "Oak bench"}, headers=queued)
        # a refresh waits for the index's queued batches: the next search sees them
        assert send(svc, "POST", f"/{index_name}/_refresh").status_code == 200
        hits = send(svc, "POST", f"/{index_name}/_search", {"query": {"match_all": {}}, "_source": False}).json()
        assert sorted(h["_id"] for h in hits["hits"]["hits"]) == ["q1", "q2", "q5", "q6", "q9"]
    finally:
        engine.delete_index(index_name)


def test_concurrent_updates_all_land_with_retry_on_conflict(svc, index_name, engine):
    """Each update reads, merges and writes guarded by what it read; a lost race retries."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        assert send(svc, "PUT", f"/{index_name}/_doc/p", {"title": "Office chair"}).status_code == 201

        def update(n: int) -> httpx.Response:
            return send(svc, "POST", f"/{index_name}/_update/p", {"doc": {f"f{n}": n}}, {"retry_on_conflict": "50"})

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(update, range(6)))
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        doc = send(svc, "GET", f"/{index_name}/_doc/p").json()
        assert doc["_version"] == 7 and all(doc["_source"][f"f{n}"] == n for n in range(6))
        stale = send(svc, "POST", f"/{index_name}/_update/p", {"doc": {"f0": -1}},
                     {"if_seq_no": "0", "if_primary_term": "1"})
        assert stale.status_code == 409 and stale.json()["error"]["type"] == "version_conflict_engine_exception"
    finally:
        engine.delete_index(index_name)


def test_alias_without_write_index_and_auto_ids(svc, eng, index_name, engine):
    """The engine's own item error for an alias it cannot write to; POST /_doc without an id creates one."""
    names = [f"{index_name}-{n}" for n in (1, 2)]
    try:
        for name in names:
            engine.create_products_index(name)
        engine.update_aliases([{"add": {"index": name, "alias": f"{index_name}-alias"}} for name in names])
        ops = [{"index": {"_index": f"{index_name}-alias", "_id": "1"}}, {"title": "Chair"}]
        direct, served = send(eng, "POST", "/_bulk", ops).json(), send(svc, "POST", "/_bulk", ops).json()
        assert served["errors"] is True
        assert comparable(served, "") == comparable(direct, "")
        queued = send(svc, "POST", "/_bulk", ops, headers={"x-polyseek-write": "queued"}).json()
        assert comparable(queued, "") == comparable(direct, "")  # checked before queueing
        upper = [{"index": {"_index": index_name.upper(), "_id": "1"}}, {"title": "Chair"}]
        direct, served = send(eng, "POST", "/_bulk", upper).json(), send(svc, "POST", "/_bulk", upper).json()
        assert served["items"][0]["index"]["error"]["type"] == direct["items"][0]["index"]["error"]["type"]
        created = send(svc, "POST", f"/{names[0]}/_doc", {"title": "Lamp"}, {"refresh": "true"})
        assert created.status_code == 201 and created.json()["result"] == "created"
        doc_id = created.json()["_id"]
        assert send(svc, "GET", f"/{names[0]}/_doc/{doc_id}").json()["_source"]["title"] == "Lamp"
    finally:
        for name in names:
            engine.delete_index(name)


def test_pending_writes_bookkeeping():
    """Which queued batch each id waits on: the latest one, per index; forgotten once settled."""
    from service.writes import PendingWrites

    pending = PendingWrites()
    pending.add("products", ["a", "b", "c"], ["t1", "t2"], batch_size=2)
    pending.add("products", ["c"], ["t3"], batch_size=2)  # queued again: its newer batch counts
    assert pending.tasks_for([("products", "a"), ("products", "c"), ("other", "a")]) == {"t1", "t3"}
    assert pending.tasks_of_indices("prod*") == pending.tasks_of_indices(None) == {"t1", "t3"}
    assert pending.tasks_of_indices("other") == set()
    pending._forget_task("t1")
    assert pending.tasks_for([("products", "a"), ("products", "b")]) == set() and len(pending) == 1


def test_engine_down_write_is_503(settings):
    """A write the engine cannot take answers 503 in Elasticsearch's shape; nothing is claimed written."""
    from bench.runner import free_port, serve_in_thread

    url, stop = serve_in_thread(settings.model_copy(update={"engine_url": f"http://127.0.0.1:{free_port()}"}))
    try:
        for method, path, body in [("PUT", "/products/_doc/1", {"title": "Chair"}),
                                   ("POST", "/products/_bulk", [{"delete": {"_id": "1"}}]),
                                   ("POST", "/products/_update/1", {"doc": {"title": "x"}})]:
            resp = send(url, method, path, body)
            assert resp.status_code == 503 and resp.json()["error"]["root_cause"], resp.text
    finally:
        stop()


_META_VALUES = {
    "_id": st.one_of(st.sampled_from(["1", "2", "", "ü/\u4e2d", "x" * 600]), st.integers(-2, 3)),
    "routing": st.sampled_from(["r1", "", 7]),
    "version": st.one_of(st.integers(-1, 5), st.sampled_from(["x", None])),
    "version_type": st.sampled_from(["internal", "external", "external_gte", "force", "bogus", 3]),
    "if_seq_no": st.one_of(st.integers(-3, 3), st.just("x")),
    "if_primary_term": st.one_of(st.integers(-1, 2), st.just([])),
    "retry_on_conflict": st.one_of(st.integers(-1, 3), st.sampled_from(["x", "2", None])),
    "op_type": st.sampled_from(["create", "index", "upsert"]),
    "require_alias": st.sampled_from([True, False, "yes"]),
    "unknown_key": st.just(1),
}
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=32),
                     st.text(max_size=12), st.just("\ud800 lone surrogate"))
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=8)
_DOCS = st.fixed_dictionaries({"title": st.sampled_from(["Oak chair", "Lampe"])}, optional={
    "brand": _JSON, "description": _SCALARS, "price": _SCALARS, "id": _SCALARS, "lang": _SCALARS,
    "attributes": _JSON})
_UPDATES = st.fixed_dictionaries({"doc": _DOCS}, optional={
    "upsert": _DOCS, "doc_as_upsert": _SCALARS, "detect_noop": _SCALARS, "script": _JSON,
    "_source": _SCALARS, "bogus": _SCALARS})


@st.composite
def _bulk_bodies(draw) -> tuple[list, int]:
    """NDJSON lines of a bulk body and the number of operations in it."""
    lines: list = []
    n_ops = draw(st.integers(1, 4))
    for _ in range(n_ops):
        action = draw(st.sampled_from(["index"] * 6 + ["create", "delete", "upsert"] + ["update"] * 6))
        # hypothesis favours small draws: 0 is the ordinary case, the top value the odd one
        meta = {} if draw(st.integers(0, 4)) == 4 else {"_id": draw(st.sampled_from(["1", "2", "3"]))}
        if draw(st.integers(0, 4)) == 4:  # now and then one more key, of any value
            key = draw(st.sampled_from(sorted(_META_VALUES)))
            meta[key] = draw(_META_VALUES[key])
        lines.append({action: meta})
        if action != "delete":
            rare = draw(st.integers(0, 5)) == 5  # a body of any shape, now and then
            lines.append(draw(_JSON if rare else _UPDATES if action == "update" else _DOCS))
    return lines, n_ops


def test_fuzzed_writes_never_5xx(worker, svc, index_name, engine):
    """Bodies of any shape: never a 5xx, every 4xx in Elasticsearch's error shape, one item per operation
    (the worker runs: a queued id that a later operation touches is waited for)."""
    from hypothesis import HealthCheck, given, settings as hsettings

    @hsettings(max_examples=60, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(_bulk_bodies(), st.sampled_from([{}, {"refresh": "true"}, {"routing": "r"}, {"refresh": "maybe"}]),
           st.sampled_from([{}, {"x-polyseek-write": "queued"}]))
    def check(body: tuple[list, int], params: dict, headers: dict) -> None:
        lines, n_ops = body
        content = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
        resp = httpx.post(f"{svc}/{index_name}/_bulk", content=content, params=params,
                          headers={**NDJSON, **headers}, timeout=300)
        assert resp.status_code < 500, (lines, resp.text)
        data = resp.json()
        if resp.status_code >= 400:
            assert data["status"] == resp.status_code and data["error"]["root_cause"][0]["type"], data
        else:
            assert len(data["items"]) == n_ops, (lines, data)
            assert all(isinstance(body["status"], int) for item in data["items"] for body in item.values())

    try:
        check()
    finally:
        engine.delete_index(index_name)
