"""Rank fusion: reciprocal rank fusion and normalised linear combination.

Pure functions over ranked lists of ``(doc_id, score)``, best first.  They follow
Elasticsearch's ``rrf`` and ``linear`` retrievers: RRF scores ``sum 1/(k + rank)``
(rank from 1); ``linear`` sums ``weight * normalize(score)`` where a document
missing from a list contributes 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

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


def gate_open(lists: Sequence[Ranked], gated: Sequence[bool], reference: int, *, k: int = 10,
              margin: float | None = None, similarity: Callable[[float], float] | None = None,
              anchor: int | None = None) -> list[bool]:
    """Per list: whether it counts for this query under the fusion's gate (ungated lists always do).

    The query-adaptive rule of the hybrid default.  A gated (lexical) list counts when the
    reference (kNN) list backs its top hit: the hit is in the reference's top ``k``, or
    (``margin``) its reference similarity is within ``margin`` of the reference's best, i.e.
    the document the query matched by its words is as close in meaning as the best match
    (an exact product type, brand or model number in the query's own language).  A lexical
    top hit the reference ranks far below its best matched words only (a same-language wrong
    product, the usual case for a cross-lingual query) and is left out.  ``anchor``: a list
    whose any hit opens the gate for every list (the exact-title leaf: the query *is* a
    document's title).  ``similarity`` maps the reference's engine scores to the scale of
    ``margin`` (cosine for a kNN reference; identity when None).
    """
    sim = similarity or (lambda score: score)
    if anchor is not None and lists[anchor]:
        return [True] * len(lists)
    ref = lists[reference]
    top = {doc_id for doc_id, _ in ref[:k]} if k > 0 else set()
    ref_scores = dict(ref)
    best = sim(ref[0][1]) if ref else 0.0

    def backed(ranked: Ranked) -> bool:
        if not ranked:
            return False
        doc_id = ranked[0][0]
        if doc_id in top:
            return True
        return margin is not None and doc_id in ref_scores and best - sim(ref_scores[doc_id]) <= margin

    return [not g or i == reference or backed(ranked) for i, (ranked, g) in enumerate(zip(lists, gated))]


def anchor_languages(lists: Sequence[Ranked], opened: Sequence[bool], gated: Sequence[bool],
                     anchor: int | None, lang: Mapping[str, str], query_language: str | None = None) -> set[str]:
    """The shopper's language(s) as the documents show it: those of the anchor list's hits (the
    query is their title), else that of the first open gated list's top hit (the query matched
    it by its words and kNN backs it) when it is the language detected in the query text -- a
    lexical match across languages (a brand, a material, a model number) says nothing about the
    shopper's language; empty when no such evidence counts for this query."""
    if anchor is not None and lists[anchor]:
        return {lang[d] for d, _ in lists[anchor] if d in lang}
    for ranked, ok, g in zip(lists, opened, gated):
        if g and ok and ranked:
            found = lang.get(ranked[0][0])
            return {found} if found is not None and found == query_language else set()
    return set()


def prefer_languages(ranked: Ranked, lang: Mapping[str, str], languages: set[str], boost: float) -> Ranked:
    """``ranked`` with ``boost`` added to the score of every document in ``languages``, re-sorted.

    When the catalog has the product in the shopper's language (:func:`anchor_languages`), its
    listings in that language come before other languages' versions of the same or related
    products; with no such evidence nothing moves, so a cross-lingual query still gets the right
    product in whichever language it is listed.
    """
    if not languages or boost == 0:
        return ranked
    return sorted(((d, s + (boost if lang.get(d) in languages else 0.0)) for d, s in ranked),
                  key=lambda kv: (-kv[1], kv[0]))


class Gate(Protocol):
    """The gate of one fusion (``agreement_gate`` of an ``rrf``/``linear`` retriever)."""

    reference: int
    k: int
    margin: float | None
    anchor: int | None
    language_boost: float
    within: bool


def gated_fusion(lists: Sequence[Ranked], weights: Sequence[float], gated: Sequence[bool], *, kind: str,
                 normalizers: Sequence[Normalizer] = (), rank_constant: int = 60, window: int | None = None,
                 gate: Gate | None = None, similarity: Callable[[float], float] | None = None,
                 lang: Mapping[str, str] | None = None, query_language: str | None = None) -> Ranked:
    """One ``rrf`` or ``linear`` fusion under its gate, as the hybrid runs it: gated lists the gate
    leaves closed weigh 0 (:func:`gate_open`), ``within`` ranks only the reference's documents,
    and documents in the anchor's language gain ``language_boost`` (:func:`anchor_languages`,
    :func:`prefer_languages`; ``lang``: the documents' languages)."""
    languages: set[str] = set()
    gating = gate is not None and (gate.k > 0 or gate.margin is not None or gate.anchor is not None)
    if gating:
        opened = gate_open(lists, gated, gate.reference, k=gate.k, margin=gate.margin, similarity=similarity,
                           anchor=gate.anchor)
        weights = [w if ok else 0.0 for w, ok in zip(weights, opened)]
        if gate.language_boost > 0 and lang is not None:
            languages = anchor_languages(lists, opened, gated, gate.anchor, lang, query_language)
    within = gate.reference if gate is not None and gate.within else None
    if kind == "rrf":
        fused = rrf(lists, rank_constant, window, weights, within)
    else:
        fused = linear(lists, weights, normalizers, window, within)
    return prefer_languages(fused, lang or {}, languages, gate.language_boost) if languages else fused
