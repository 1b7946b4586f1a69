"""The Celery application of the ingest queue.

Run a worker with ``celery -A pipelines.ingest.celery_app worker`` (or
``polyseek worker``).  Importing this module reads no settings and creates
nothing: the app is configured from the settings object when its configuration
is first read (a task sent, a result asked for, a worker started), through
Celery's ``on_configure`` signal and ``config_from_object``.  Reliability settings:

- ``acks_late`` + ``reject_on_worker_lost``: a batch is acknowledged only after
  its documents are in the engine; a worker killed mid-batch leaves it on the
  queue, and it is redelivered (Redis: after ``queue_visibility_timeout_s``).
- ``prefetch_multiplier=1``: a worker holds one batch at a time.
- Engine ``_id`` is the document id, so a redelivered batch overwrites itself.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from pipelines.settings import Settings, get_settings

INGEST_QUEUE = "polyseek-ingest"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration of the ingest queue, from ``settings``."""
    broker_url = settings.resolved_broker_url
    return {
        "broker_url": broker_url,
        "result_backend": settings.result_backend_url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": INGEST_QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": ({"visibility_timeout": settings.queue_visibility_timeout_s}
                                     if broker_url.startswith("redis") else {}),
        "worker_hijack_root_logger": False,
        # a prefork child loads its encoder in worker_process_init (pipelines.ingest.tasks): seconds on busy cores,
        # past Celery's default 4 s after which the child counts as failed to start
        "worker_proc_alive_timeout": 60.0,
    }


app = Celery("polyseek", include=["pipelines.ingest.tasks"])


@app.on_configure.connect
def configure(sender: Celery, **_: Any) -> None:
    """Configure ``sender`` from the settings object as its configuration is first read (not at import)."""
    settings = get_settings()
    settings.cache_dir.mkdir(parents=True, exist_ok=True)  # the server-less SQLite broker and the results live here
    sender.config_from_object(celery_config(settings))
