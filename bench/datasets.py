"""Dev benchmarks built from ``../shared/data`` (never committed; only this code is).

Split rule: only taxonomy ids with ``id % 5 == 0`` and the IKEA ``val`` split are scored;
the rest is training data (see ``pipelines/models/train_sparse.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.models.training_data import TAXONOMY_LOCALES, is_eval_id, read_ikea, read_taxonomy

QUERY_LANGS = ("de", "fr", "es", "ja", "zh")
MONO_LANGS = ("en", *QUERY_LANGS)


@dataclass
class Benchmark:
    """A corpus of products, queries with their language, and graded qrels."""

    name: str
    corpus: dict[str, dict] = field(default_factory=dict)        # doc id -> product
    queries: dict[str, tuple[str, str]] = field(default_factory=dict)  # query id -> (text, lang)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)     # query id -> doc id -> grade
    own_doc: dict[str, str] = field(default_factory=dict)  # query id -> its own text in the corpus (not scored)
    # LAReQA-style relevance (Roy et al., 2020): every *other* language's version of the query's item, with the
    # query's own-language version (its own text here) left out of the ranking; scored as mAP@20
    lareqa: dict[str, dict[str, int]] = field(default_factory=dict)
    lareqa_skip: dict[str, str] = field(default_factory=dict)

    def doc_lang(self, doc_id: str) -> str:
        return self.corpus[doc_id]["lang"]


def taxonomy_xling(data_dir: Path, *, pool: str = "en", queries_per_lang: int | None = None,
                   distractors: int | None = None, seed: int = 13, split: str = "eval",
                   query_langs: tuple[str, ...] = QUERY_LANGS) -> Benchmark:
    """Category leaves in de/fr/es/ja/zh retrieve the category (same id: grade 2, parent/children: 1).

    ``pool="en"``: the corpus is the English taxonomy; ``"mixed"``: every locale's.
    ``distractors`` limits the non-relevant part of the corpus (CI slices).
    ``split="train"`` takes the queries from the training ids instead (for fitting, never scoring).
    """
    if split not in ("eval", "train"):
        raise ValueError("split must be 'eval' or 'train'")
    rng = random.Random(seed)
    tax = {lang: read_taxonomy(data_dir, lang) for lang in TAXONOMY_LOCALES}
    en = tax["en"]
    by_path = {tuple(levels): cid for cid, levels in en.items()}
    parent = {cid: by_path.get(tuple(levels[:-1])) for cid, levels in en.items()}
    children: dict[int, list[int]] = {}
    for cid, par in parent.items():
        if par is not None:
            children.setdefault(par, []).append(cid)

    bench = Benchmark(f"taxonomy-xling-{pool}" + ("-train" if split == "train" else ""))
    qids_by_lang = {}
    for lang in query_langs:
        ids = sorted(cid for cid in tax[lang] if is_eval_id(cid) == (split == "eval") and cid in en)
        rng.shuffle(ids)
        qids_by_lang[lang] = ids[:queries_per_lang] if queries_per_lang else ids
    wanted: set[int] = set()
    for lang, ids in qids_by_lang.items():
        for cid in ids:
            related = {cid: 2, **{c: 1 for c in children.get(cid, [])}}
            if parent.get(cid) is not None:
                related[parent[cid]] = 1
            wanted.update(related)
            qid = f"{lang}-{cid}"
            bench.queries[qid] = (tax[lang][cid][-1], lang)
            doc_langs = TAXONOMY_LOCALES if pool == "mixed" else ("en",)
            bench.qrels[qid] = {f"{rid}-{dl}": g for rid, g in related.items() for dl in doc_langs
                                if rid in tax[dl]}
    all_ids = sorted(en)
    if distractors is not None:
        others = [c for c in all_ids if c not in wanted]
        rng.shuffle(others)
        all_ids = sorted(wanted | set(others[:distractors]))
    for dl in (TAXONOMY_LOCALES if pool == "mixed" else ("en",)):
        for cid in all_ids:
            if cid in tax[dl]:
                levels = tax[dl][cid]
                bench.corpus[f"{cid}-{dl}"] = {"id": f"{cid}-{dl}", "title": levels[-1],
                                               "category": " > ".join(levels), "lang": dl}
    return bench


def monolingual(bench: Benchmark) -> Benchmark:
    """The same corpus and queries with only same-language documents relevant (where BM25 should matter).

    Every locale's query (English too) must find its category in its own language among
    the five other languages' versions of it and of everything else.  The same runs are also
    scored LAReQA-style (:attr:`Benchmark.lareqa`): the five other languages' versions of the
    query's category, its own-language version set aside -- strong cross-lingual alignment.
    """
    mono = Benchmark(bench.name.replace("taxonomy-xling-mixed", "taxonomy-mono"), corpus=bench.corpus,
                     own_doc=bench.own_doc)
    for qid, (text, lang) in bench.queries.items():
        rel = {d: g for d, g in bench.qrels[qid].items() if bench.doc_lang(d) == lang}
        if rel:
            mono.queries[qid], mono.qrels[qid] = (text, lang), rel
            same_item = [d for d, g in bench.qrels[qid].items() if g == 2]
            mono.lareqa[qid] = {d: 1 for d in same_item if bench.doc_lang(d) != lang}
            mono.lareqa_skip[qid] = next((d for d in same_item if bench.doc_lang(d) == lang), "")
    return mono


def ikea_xling(data_dir: Path, *, limit: int | None = None, split: str = "val") -> Benchmark:
    """German/French IKEA descriptions retrieve their English original and back (``val``; ``train`` to fit).

    The corpus mixes the English, German and French descriptions.  The en-de and en-fr
    sets share most English texts, so each English text is one document whose relevant
    translations (grade 2) are all its German and French versions; the query's own
    text, also in the corpus, is removed from its results before scoring.
    """
    bench = Benchmark("ikea-xling" + ("-train" if split == "train" else ""))
    english_ids: dict[str, str] = {}
    translations: dict[str, list[str]] = {}
    for other in ("de", "fr"):
        english, foreign = read_ikea(data_dir, split, f"en-{other}")
        n = min(len(english), len(foreign), limit or len(english))
        for i in range(n):
            en_id = english_ids.setdefault(english[i], f"en-{len(english_ids)}")
            bench.corpus[en_id] = {"id": en_id, "title": english[i][:80], "description": english[i], "lang": "en"}
            fo_id = f"{other}-{i}"
            bench.corpus[fo_id] = {"id": fo_id, "title": foreign[i][:80], "description": foreign[i], "lang": other}
            bench.queries[f"q-{fo_id}"] = (foreign[i], other)
            bench.qrels[f"q-{fo_id}"] = {en_id: 2}
            bench.own_doc[f"q-{fo_id}"] = fo_id
            translations.setdefault(en_id, []).append(fo_id)
    for text, en_id in english_ids.items():
        bench.queries[f"q-{en_id}"] = (text, "en")
        bench.qrels[f"q-{en_id}"] = {fo: 2 for fo in translations[en_id]}
        bench.own_doc[f"q-{en_id}"] = en_id
    return bench


BENCHMARKS = ("taxonomy-xling", "taxonomy-xling-mixed", "taxonomy-mono", "ikea-xling")


def load(name: str, data_dir: Path, *, small: bool = False, limit: int | None = None) -> Benchmark:
    """A benchmark by name; ``small`` gives the slice CI runs to prove the pipeline works;
    ``limit`` caps queries per language (taxonomy) or aligned pairs (IKEA) on the full corpus."""
    if name == "taxonomy-xling":
        return taxonomy_xling(data_dir, pool="en", queries_per_lang=12 if small else limit,
                              distractors=150 if small else None)
    if name == "taxonomy-xling-mixed":
        return taxonomy_xling(data_dir, pool="mixed", queries_per_lang=12 if small else limit,
                              distractors=60 if small else None)
    if name == "taxonomy-mono":  # the mixed pool with a cap on distractors, same-language relevance only
        return monolingual(taxonomy_xling(data_dir, pool="mixed", queries_per_lang=12 if small else limit,
                                          distractors=60 if small else 1000, query_langs=MONO_LANGS))
    if name == "ikea-xling":
        return ikea_xling(data_dir, limit=20 if small else limit)
    raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
