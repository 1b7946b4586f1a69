"""The service's own indices: the query log (one record per search) and the feedback events.

Their record formats are the service's (written by the search and feedback routes); their
mappings are ``es_templates/component/query-log.json`` and ``feedback.json``.
"""

from __future__ import annotations

import copy

from pipelines.engine.dialect import Body, load_template
from pipelines.settings import Settings


def query_log_index_body() -> Body:
    """Settings and mappings of the query-log index."""
    return copy.deepcopy(load_template("component/query-log.json")["template"])


def feedback_index_body() -> Body:
    """Settings and mappings of the feedback index."""
    return copy.deepcopy(load_template("component/feedback.json")["template"])


def log_indices(settings: Settings) -> list[tuple[str, Body]]:
    """``(name, body)`` of each index the service writes its records to (created at start-up)."""
    return [(settings.query_log_index, query_log_index_body()), (settings.feedback_index, feedback_index_body())]
