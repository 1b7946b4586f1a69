"""Elasticsearch-shaped errors: ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class SearchError(Exception):
    """An error the client should see with an HTTP status and an Elasticsearch error type."""

    def __init__(self, status: int, error_type: str, reason: str, **extra: Any):
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.extra = extra


def error_body(status: int, error_type: str, reason: str, **extra: Any) -> dict[str, Any]:
    cause = {"type": error_type, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def error_response(status: int, error_type: str, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, error_type, reason, **extra), status_code=status)


def bad_request(reason: str, error_type: str = "parsing_exception") -> SearchError:
    return SearchError(400, error_type, reason)
