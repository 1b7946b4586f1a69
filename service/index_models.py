"""Which dense model embedded an index: read from its mapping once, kept per index expression.

The model an index was embedded by is recorded in its mapping (``_meta.polyseek_model``,
:func:`pipelines.engine.dialect.models_of`).  Reading ``GET /<index>/_mapping`` before every
search cost a round trip; :class:`IndexModels` reads it once per index expression (an index, an
alias, a list or a pattern) and keeps the model with the physical indices the expression named.

A kept entry is checked by every search that uses it, without a request of its own:

1. **The hits name their index.**  Every hit carries its physical index (``_index``).  A hit
   from a physical index the entry does not know means the expression names other indices now:
   ``polyseek reindex`` switched the alias to a new physical index, or a new index matches the
   pattern.  The entry is read again and, when the model changed, the search runs again on the
   new one (once), so the first search after a switch already embeds with the new model, as
   when the mapping was read per search.  (A search answering no hits at all has nothing a
   model could have got wrong but its kNN vector, which a new index of other dimensions refuses:
   see 2.)
2. **An engine refusal is checked.**  When the engine refuses a search made with a kept entry
   (a 4xx: e.g. a query vector of the wrong dimensions for a new index, or the index gone), the
   entry is read again; when it changed, the search runs again on the new one, otherwise the
   refusal stands.
3. **Changes through this service forget everything**: creating or deleting an index, changing
   a mapping or an alias (:func:`changes_indices`).
4. **A time to live** (``settings.index_model_ttl_s``) bounds what 1-3 cannot see: an index
   deleted and created again under the same name with another model of the same dimensions, by
   another process, and searched before any hit or refusal shows it.

The entry also keeps each physical index's model fingerprint (``_meta.polyseek_model_fingerprint``), so
that telling a search on an index embedded by other weights of the model's name
(:mod:`pipelines.stale_vectors`) costs nothing per search.

A generation counter in ``_meta`` (bumped by the alias switch) was the alternative; it needs a
read of the mapping (or of the alias) per search to be seen, which is the round trip this saves.
Concurrent first searches of one expression share one read.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pipelines.engine.dialect import fingerprints_of, models_of
from pipelines.engine.errors import EngineRequestError
from pipelines.engine.transport import AsyncEngine
from service.errors import SearchError

T = TypeVar("T")
# requests that change which indices an expression names, or their mappings (method, path regex)
_INDEX_CHANGES = [(m, re.compile(p)) for m, p in [
    ("PUT|DELETE", r"/[^_/][^/]*/?"), ("PUT|POST", r"/[^/]+/_mappings?/?"), ("POST", r"/_aliases/?"),
    ("PUT|POST|DELETE", r"/[^/]+/_alias(es)?(/[^/]*)?/?"), ("POST", r"/[^/]+/_(close|open|rollover)(/.*)?")]]


@dataclass(frozen=True)
class IndexModel:
    """What an index expression's mapping says: the models recorded, the physical indices named."""

    expression: str
    models: frozenset[str]
    indices: frozenset[str]
    resolved_at: float
    kept: bool = True  # False: not read (no such index yet, engine error): not kept, checks nothing
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # physical index -> its model's fingerprint

    @property
    def model(self) -> str | None:
        """The one dense model of the expression's indices (None: none recorded); a 400 when its
        indices were embedded by different models (their vectors are not comparable)."""
        if len(self.models) > 1:
            raise SearchError(400, "illegal_argument_exception",
                              f"indices [{self.expression}] were embedded by different models {sorted(self.models)}; "
                              "search them separately or give [model_id]")
        return next(iter(self.models), None)

    def names(self, indices: Iterable[str]) -> bool:
        """Whether every physical index in ``indices`` (those that answered hits) is one of this entry's."""
        return not self.kept or self.indices.issuperset(indices)


def changes_indices(method: str, path: str) -> bool:
    """Whether a request creates or deletes an index, or changes a mapping or an alias."""
    return any(method in methods.split("|") and pattern.fullmatch(path) for methods, pattern in _INDEX_CHANGES)


class IndexModels:
    """The dense model of each index expression, read once and kept (see the module's notes)."""

    def __init__(self, engine: AsyncEngine, *, ttl_s: float, timeout_s: float | None = None):
        self.engine = engine
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._kept: dict[str, IndexModel] = {}
        self._reading: dict[str, asyncio.Task[IndexModel]] = {}

    def clear(self) -> None:
        """Forget every entry (indices or aliases changed through this service)."""
        self._kept.clear()

    async def get(self, expression: str) -> IndexModel:
        """The kept entry of ``expression``, or its mapping read (one read for concurrent callers)."""
        entry = self._kept.get(expression)
        if entry is not None and time.monotonic() - entry.resolved_at < self.ttl_s:
            return entry
        return await self.read(expression)

    async def read(self, expression: str) -> IndexModel:
        """Read ``expression``'s mapping now and keep what it says (not kept when it is not there).
        One read runs per expression at a time; a caller that goes away does not cancel it."""
        task = self._reading.get(expression)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read(expression))
            self._reading[expression] = task
            task.add_done_callback(lambda done: self._read_done(expression, done))
        return await asyncio.shield(task)

    def _read_done(self, expression: str, task: asyncio.Task[IndexModel]) -> None:
        del self._reading[expression]
        if task.cancelled() or task.exception() is not None:  # retrieved: the callers were told
            return
        entry = task.result()
        if entry.kept:
            self._kept[expression] = entry
        else:
            self._kept.pop(expression, None)

    async def _read(self, expression: str) -> IndexModel:
        resp = await self.engine.request("GET", f"/{expression}/_mapping", timeout_s=self.timeout_s)
        data = resp.json() if resp.status == 200 else None
        if not isinstance(data, dict):  # the search itself reports a missing index
            return IndexModel(expression, frozenset(), frozenset(), time.monotonic(), kept=False)
        return IndexModel(expression, frozenset(models_of(data)), frozenset(data), time.monotonic(),
                          fingerprints=fingerprints_of(data))

    async def run(self, expression: str, search: Callable[[IndexModel], Awaitable[tuple[T, set[str]]]]) -> T:
        """``search`` with ``expression``'s entry; it answers its result and the physical indices that
        answered hits.  Run again (once) on a fresh entry when the answer or a refusal shows the kept
        one was stale and the model changed."""
        entry = await self.get(expression)
        try:
            result, answered_by = await search(entry)
        except EngineRequestError:
            if not entry.kept:
                raise
            fresh = await self.read(expression)
            if (fresh.models, fresh.indices) == (entry.models, entry.indices):
                raise  # the refusal is the request's own
            return (await search(fresh))[0]
        if entry.names(answered_by):
            return result
        fresh = await self.read(expression)
        return result if fresh.models == entry.models else (await search(fresh))[0]
