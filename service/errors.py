"""The service's own errors, in the engine transport's exception tree (:mod:`pipelines.engine.errors`).

Everything raised while answering a request that is an :class:`~pipelines.engine.errors.ApiError`,
the service's :class:`SearchError` and the engine's errors alike, answers in Elasticsearch's shape.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from pipelines.engine.errors import ApiError, error_body

__all__ = ["ApiError", "SearchError", "bad_request", "error_body", "error_response"]


class SearchError(ApiError):
    """An error the service itself raises: an HTTP status, an Elasticsearch error type and a reason."""


def error_response(status: int, error_type: str, reason: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    """An error answer in Elasticsearch's shape (:func:`error_body`), with ``headers``."""
    return JSONResponse(error_body(status, error_type, reason, **extra), status_code=status, headers=headers)


def bad_request(reason: str, error_type: str = "parsing_exception") -> SearchError:
    return SearchError(400, error_type, reason)
