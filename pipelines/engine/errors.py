"""One exception tree for everything that talks to the engine, in Elasticsearch's error shape.

Every error carries an HTTP status, an Elasticsearch error ``type`` and a ``reason``, so the
query service answers any of them with :func:`error_body` as Elasticsearch would, and the
ingest workers retry exactly the :class:`EngineUnavailable` branch::

    ApiError                      status, error_type, reason (the service's own errors subclass it)
    └── EngineError               the engine failed or refused a request; ``body`` is its answer
        ├── EngineRequestError    4xx: the request's own fault, not worth a retry
        └── EngineUnavailable     no answer, 429 or 5xx: worth a retry
            ├── EngineTimeout     no answer in time (504; slow is not down: no breaker failure)
            └── CircuitOpen       refused here, without a request: the engine failed repeatedly

:func:`from_response` is the one place an engine answer becomes one of them.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with an HTTP status and an Elasticsearch error type and reason."""

    def __init__(self, status: int, error_type: str, reason: str, **extra: Any):
        super().__init__(status, error_type, reason)  # args rebuild it (pickle, Celery's result backend)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.extra = extra

    def __str__(self) -> str:
        return self.reason

    def to_body(self) -> dict[str, Any]:
        """The error as Elasticsearch answers it (``{"error": {...}, "status": ...}``)."""
        return error_body(self.status, self.error_type, self.reason)


class EngineError(ApiError):
    """The engine failed or refused a request; ``body`` is its parsed answer, if it answered."""

    def __init__(self, status: int, error_type: str, reason: str, body: Any = None, **extra: Any):
        super().__init__(status, error_type, reason, **extra)
        self.body = body


class EngineRequestError(EngineError):
    """The engine answered with a 4xx error about the request itself."""


class EngineUnavailable(EngineError):
    """The engine did not answer (connection refused, timeout, circuit open) or answered 429/5xx;
    worth a retry."""


class EngineTimeout(EngineUnavailable):
    """The engine did not answer in time."""


class CircuitOpen(EngineUnavailable):
    """The circuit breaker refused the request: the engine failed repeatedly and is not yet probed back."""


def error_body(status: int, error_type: str, reason: str, **extra: Any) -> dict[str, Any]:
    """Elasticsearch's error document: ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``."""
    cause = {"type": error_type, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def from_response(status: int, body: Any) -> EngineError:
    """The engine's error answer (``status``, parsed ``body``) as an :class:`EngineError`.

    429 and 5xx become :class:`EngineUnavailable`, other statuses :class:`EngineRequestError`;
    the type and reason are the engine's own where its body has them. A non-error status with
    an unexpected body (a ``_bulk`` answer without ``items``) is a 500.
    """
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        error_type = str(err.get("type", "engine_exception"))
        reason = str(err.get("reason", ""))[:2000]
    else:
        error_type = "engine_exception"
        reason = str(err if err is not None else body)[:500]
    status = status if status >= 400 else 500
    cls = EngineUnavailable if status == 429 or status >= 500 else EngineRequestError
    return cls(status, error_type, reason, body=body)
