"""The ingest queue against the real redis broker, a real Celery worker and the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.engine.launcher import LocalEngine
from pipelines.ingest import api


LAZY_CELERY = textwrap.dedent("""
    import json, os
    from pathlib import Path
    from celery.signals import worker_process_init
    from pipelines.ingest.celery_app import app
    from pipelines.ingest.tasks import _load_encoder, index_batch
    from pipelines.settings import get_settings

    cache = Path(os.environ["POLYSEEK_CACHE_DIR"])
    out = {"imported": {"configured": app.configured, "cache_dir": cache.exists()}}
    os.environ["POLYSEEK_INGEST_MAX_RETRIES"] = "7"  # settings as they are at first use, not at import
    get_settings.cache_clear()
    out["first_use"] = {"broker": app.conf.broker_url, "queue": app.conf.task_default_queue,
                        "cache_dir": cache.exists(), "max_retries": index_batch.max_retries}
    os.environ["POLYSEEK_INGEST_MAX_RETRIES"] = "2"  # read when the task retries
    get_settings.cache_clear()
    out["retry_limit_later"] = index_batch.max_retries
    worker_process_init.send(sender=None)  # no model in this cache: the worker still starts
    out["encoders_without_model"] = _load_encoder.cache_info().currsize
    os.environ["POLYSEEK_MODEL_DIR"] = os.environ["MODELS"]
    get_settings.cache_clear()
    worker_process_init.send(sender=None)
    out["encoders_at_process_init"] = _load_encoder.cache_info().currsize
    print(json.dumps(out))
""")


def test_celery_is_configured_on_first_use_not_at_import(settings, tmp_path: Path):
    """Importing the app and its tasks reads no settings and creates no folder; the first use configures the
    app from the settings object as it is then; the retry limit is read when a batch retries; a worker
    process loads its encoder as it starts (worker_process_init), and starts without one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSEEK_")}
    env |= {"POLYSEEK_CACHE_DIR": str(tmp_path / "cache"), "MODELS": str(settings.resolved_model_dir)}
    proc = subprocess.run([sys.executable, "-c", LAZY_CELERY], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["imported"] == {"configured": False, "cache_dir": False}
    assert out["first_use"] == {"broker": f"sqla+sqlite:///{tmp_path / 'cache' / 'broker.sqlite'}",
                                "queue": "polyseek-ingest", "cache_dir": True, "max_retries": 7}
    assert out["retry_limit_later"] == 2
    assert out["encoders_without_model"] == 0 and "no encoder loaded at worker start" in proc.stderr
    assert out["encoders_at_process_init"] == 1


def products(n: int, prefix: str) -> list[dict]:
    langs = ["Wireless headphones model {i}", "Kabellose Kopfhörer Modell {i}", "无线耳机 型号 {i}",
             "Auriculares inalámbricos modelo {i}"]
    return [{"id": f"{prefix}-{i}", "title": langs[i % 4].format(i=i), "price": float(i), "extra_field": {"k": i}}
            for i in range(n)]


def all_ids(engine, index: str) -> list[str]:
    engine.refresh(index)
    resp = engine.search(index, {"size": 10_000, "_source": False, "query": {"match_all": {}}})
    return [h["_id"] for h in resp["hits"]["hits"]]


def dead_letters(engine, settings, index: str) -> list[dict]:
    engine.refresh(settings.dead_letter_index)
    resp = engine.search(settings.dead_letter_index, {"size": 100, "query": {"term": {"index": index}}})
    return [h["_source"] for h in resp["hits"]["hits"]]


def test_ingest_writes_vectors_language_fields_and_unknown_fields(worker, engine, index_name, settings):
    docs = products(20, "p")
    results = api.wait(api.enqueue(index_name, docs))
    assert sum(r["indexed"] for r in results) == 20
    # _source_includes=*: Elasticsearch 9 leaves vectors out of _source unless asked
    src = engine.request("GET", f"/{index_name}/_doc/p-1", params={"_source_includes": "*"})["_source"]
    assert src["lang"] == "de" and src["title_de"] == docs[1]["title"]
    assert len(src["embedding"]) == 384 and src["model"]["dense"].startswith(settings.dense_model)
    assert src["extra_field"] == {"k": 1}
    status = api.ingest_status(index_name)[index_name]
    assert status["indexed"] == 20 and status["batches_done"] == status["batches"]


def test_redelivery_is_idempotent(worker, engine, index_name):
    docs = products(10, "dup")
    api.wait(api.enqueue(index_name, docs))
    api.wait(api.enqueue(index_name, docs))
    ids = all_ids(engine, index_name)
    assert sorted(ids) == sorted(d["id"] for d in docs)


def test_bad_documents_go_to_dead_letter_and_the_rest_is_written(worker, engine, settings, index_name):
    good = products(5, "ok")
    bad = [
        {"title": "no id at all"},
        {"id": "nonstring", "title": ["a", "list"]},
        {"id": "huge", "title": "big", "description": "x" * (10 * 1024 * 1024)},
        {"id": "badprice", "title": "t", "price": "cheap"},
        {"id": "mapping", "title": "t", "attributes": "not-an-object"},
        {"id": "unknown-lang", "title": "zzxq vrrk plmt"},
    ]
    results = api.wait(api.enqueue(index_name, good + bad))
    errors = {e["id"]: e for r in results for e in r["errors"]}
    assert set(errors) == {None, "nonstring", "huge", "badprice", "mapping"}
    assert errors["huge"]["type"] == "document_too_large"
    assert errors["mapping"]["type"] == "engine_rejected"
    ids = all_ids(engine, index_name)
    assert sorted(ids) == sorted([d["id"] for d in good] + ["unknown-lang"])
    letters = dead_letters(engine, settings, index_name)
    assert {d["doc_id"] for d in letters} == {None, "nonstring", "huge", "badprice", "mapping"}
    assert all(d["reason"] for d in letters)


def test_ingest_file_reports_malformed_lines(worker, engine, settings, index_name, tmp_path: Path):
    path = tmp_path / "catalog.jsonl"
    lines = [json.dumps(d, ensure_ascii=False).encode() for d in products(4, "f")]
    lines.insert(1, b"{not json")
    lines.insert(3, b'{"id": "bad-utf8", "title": "\xff\xfe"}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = api.ingest_file(path, index_name)
    assert report.accepted == 4
    assert [r["line"] for r in report.rejected] == [2, 4]
    assert "malformed JSON" in report.rejected[0]["reason"] and "UTF-8" in report.rejected[1]["reason"]
    api.wait(report.task_ids)
    assert len(all_ids(engine, index_name)) == 4
    assert len([d for d in dead_letters(engine, settings, index_name) if d["error_type"] == "parse_exception"]) == 2


def test_worker_killed_mid_batch_loses_nothing(worker, engine, settings, index_name):
    # batches of long documents (two chunks each): a batch takes long enough (~2 s) to be killed in
    docs = [{**d, "description": " ".join(f"{d['title']} accessory {k}, spare part {k}." for k in range(20))}
            for d in products(128, "kill")]
    task_ids = api.enqueue(index_name, docs)
    killed = kill_during_a_batch(worker, task_ids)
    time.sleep(settings.queue_visibility_timeout_s + 1)
    worker.start()
    results = api.wait(task_ids, timeout_s=300)
    ids = all_ids(engine, index_name)
    assert len(ids) == len(set(ids)) == 128
    assert set(ids) == {d["id"] for d in docs}
    redelivered = [tid for tid, r in zip(task_ids, results) if r["redelivered"]]
    assert killed in redelivered, f"the batch killed in flight ({killed}) was not redelivered ({redelivered})"


def kill_during_a_batch(worker, task_ids: list[str], timeout_s: float = 300.0) -> str:
    """SIGKILL the worker while one of ``task_ids`` is received and not finished (its log says so); its id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = worker.log.read_text(errors="replace")
        for tid in task_ids:
            if f"[{tid}] received" in log and f"[{tid}] succeeded" not in log:
                worker.kill9()
                return tid
        time.sleep(0.02)
    raise AssertionError("no batch of the test was ever seen in progress")


@pytest.mark.slow
def test_engine_down_mid_ingest_loses_nothing(worker, engine, settings, index_name):
    local = LocalEngine(settings)
    if local.pid() is None:
        pytest.skip("the engine at the URL was not started by this project's launcher: not ours to stop")
    docs = products(320, "down")  # five batches: the later ones meet the stopped engine
    engine.create_products_index(index_name)
    task_ids = api.enqueue(index_name, docs)
    try:
        assert local.stop() is True
        assert local.pid() is None and not local.processes()  # stopping leaves no process behind
        time.sleep(3)
    finally:
        local.start()  # whatever happened above, later tests get their engine back
    results = api.wait(task_ids, timeout_s=300)
    ids = all_ids(engine, index_name)
    assert len(ids) == len(set(ids)) == 320
    assert any(r["attempts"] > 1 for r in results), "no batch was retried: the engine never went down under it"
