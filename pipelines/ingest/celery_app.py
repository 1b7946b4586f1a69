"""The Celery application of the ingest queue.

Run a worker with ``celery -A pipelines.ingest.celery_app worker`` (or
``polyseek worker``).  Reliability settings:

- ``acks_late`` + ``reject_on_worker_lost``: a batch is acknowledged only after
  its documents are in the engine; a worker killed mid-batch leaves it on the
  queue, and it is redelivered (Redis: after ``queue_visibility_timeout_s``).
- ``prefetch_multiplier=1``: a worker holds one batch at a time.
- Engine ``_id`` is the document id, so a redelivered batch overwrites itself.
"""

from __future__ import annotations

from celery import Celery

from pipelines.settings import get_settings

INGEST_QUEUE = "polyseek-ingest"


def make_app() -> Celery:
    settings = get_settings()
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("polyseek", broker=settings.resolved_broker_url, backend=settings.result_backend_url,
                 include=["pipelines.ingest.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=INGEST_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options=({"visibility_timeout": settings.queue_visibility_timeout_s}
                                  if settings.resolved_broker_url.startswith("redis") else {}),
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
