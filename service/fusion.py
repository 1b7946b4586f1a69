"""Rank fusion: reciprocal rank fusion and normalised linear combination.

Pure functions over ranked lists of ``(doc_id, score)``, best first.  They follow
Elasticsearch's ``rrf`` and ``linear`` retrievers: RRF scores ``sum 1/(k + rank)``
(rank from 1); ``linear`` sums ``weight * normalize(score)`` where a document
missing from a list contributes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

Ranked = list[tuple[str, float]]
Normalizer = Literal["none", "minmax", "l2_norm", "zscore"]
NORMALIZERS: tuple[str, ...] = ("none", "minmax", "l2_norm", "zscore")


def rrf(lists: Sequence[Ranked], rank_constant: int = 60, window: int | None = None,
        weights: Sequence[float] | None = None, within: int | None = None) -> Ranked:
    """Reciprocal rank fusion of ranked lists (each cut to ``window`` first).

    ``within``: only the documents of list ``within`` are ranked (the others reorder them, never add).
    """
    if rank_constant < 1:
        raise ValueError("rank_constant must be >= 1")
    scores: dict[str, float] = {}
    for i, ranked in enumerate(lists):
        w = 1.0 if weights is None else weights[i]
        for rank, (doc_id, _) in enumerate(ranked[:window] if window else ranked, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + w / (rank_constant + rank)
    return _ranked(scores, lists, window, within)


def _ranked(scores: dict[str, float], lists: Sequence[Ranked], window: int | None, within: int | None) -> Ranked:
    if within is not None:
        keep = {doc_id for doc_id, _ in (lists[within][:window] if window else lists[within])}
        scores = {d: s for d, s in scores.items() if d in keep}
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def normalize(scores: Sequence[float], method: Normalizer) -> list[float]:
    """Scores of one list mapped by ``method``; constant lists map to 1.0 under minmax."""
    values = list(scores)
    if not values or method == "none":
        return values
    if method == "minmax":
        lo, hi = min(values), max(values)
        return [1.0 if hi == lo else (v - lo) / (hi - lo) for v in values]
    if method == "l2_norm":
        norm = math.sqrt(sum(v * v for v in values))
        return [v / norm if norm else 0.0 for v in values]
    if method == "zscore":
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return [0.0 if std == 0 else (v - mean) / std for v in values]
    raise ValueError(f"unknown normalizer {method!r}; expected one of {', '.join(NORMALIZERS)}")


def linear(lists: Sequence[Ranked], weights: Sequence[float], normalizers: Sequence[Normalizer],
           window: int | None = None, within: int | None = None) -> Ranked:
    """Weighted sum of per-list normalised scores (``within``: as in :func:`rrf`)."""
    if not (len(lists) == len(weights) == len(normalizers)):
        raise ValueError("linear: one weight and one normalizer per list")
    scores: dict[str, float] = {}
    for ranked, w, method in zip(lists, weights, normalizers):
        ranked = ranked[:window] if window else ranked
        for (doc_id, _), s in zip(ranked, normalize([s for _, s in ranked], method)):
            scores[doc_id] = scores.get(doc_id, 0.0) + w * s
    return _ranked(scores, lists, window, within)


def agreement_weights(lists: Sequence[Ranked], weights: Sequence[float], gated: Sequence[bool],
                      reference: int, k: int = 10) -> list[float]:
    """Per-query weights: a gated list counts only when its best hit is among the reference list's top ``k``.

    The query-adaptive rule of the hybrid default: a lexical leaf (BM25, sparse) whose top
    document the dense leaf also ranks high has found the product by its words (an exact
    product type, brand or model number, in the query's own language) and is fused at its
    weight; a lexical leaf whose top document the dense leaf ignores matched words only
    (a same-language wrong product, the usual case for a cross-lingual query) and is left out.
    """
    top = {doc_id for doc_id, _ in lists[reference][:k]}
    return [0.0 if g and i != reference and (not lists[i] or lists[i][0][0] not in top) else w
            for i, (w, g) in enumerate(zip(weights, gated))]
