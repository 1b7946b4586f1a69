"""Fit the hybrid shorthand's fusion on *training* queries; never on what ``polyseek eval`` scores.

    python -m bench.tune_fusion [--queries 100] [--distractors 1000] [--pairs 300]

Two training-split benchmarks (taxonomy ids with ``id % 5 != 0`` in the mixed-language
pool, where every query has relevant documents in its own language and in five others;
IKEA ``train`` descriptions in a de/fr/en pool) are ingested through the real queue, and
each leaf (BM25, kNN, sparse) runs once per query through the real service.  Fusions are
then computed offline with ``service.fusion`` over a grid of weights, rank constants and
normalizers, and scored with ranx.  Prints the best settings (mean nDCG@10 of the two
benchmarks) and writes ``bench/results/fusion-tuning.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import datasets
from bench.eval_run import DEFAULT_DATA, EVAL_FIELDS, served
from bench.evaluate import methods, run_method, score
from pipelines.schema import UNDETERMINED, detect_language
from pipelines.settings import get_settings
from service import fusion
from service.retrievers import AgreementGate

LEAVES = ("bm25", "knn", "sparse", "exact")
LEXICAL = ("bm25", "sparse")  # gated leaves; "exact" (the query is a document's whole title) never is
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
EXACT_WEIGHTS = (0.0, 0.5, 1.0)
# the gate: (rank rule k, margin rule in cosine); a margin gate is also opened by an exact-title hit
GATES = ((None, None), (1, None), (10, None), (None, 0.0), (None, 0.03), (None, 0.05), (None, 0.08))
LANGUAGE_WEIGHTS = (0.0, 0.5, 1.0)  # fused score for the shopper's language while the gate is open


def candidates(with_sparse: bool = True) -> list[dict[str, Any]]:
    """Every fusion configuration tried; knn's weight is fixed at 1 (the others are relative)."""
    out = []
    for bm25, sparse, exact in itertools.product(WEIGHTS, WEIGHTS if with_sparse else (0.0,), EXACT_WEIGHTS):
        for (gate, margin), within in itertools.product(GATES, (False, True)):
            if within and (bm25 == sparse == 0.0 or margin is not None):
                continue  # kNN alone: nothing to reorder; the margin gate's language preference adds documents
            for language in LANGUAGE_WEIGHTS if margin is not None else (0.0,):
                weights = {"bm25": bm25, "knn": 1.0, "sparse": sparse, "exact": exact, "language": language}
                base = {"weights": weights, "gate": gate, "margin": margin, "within": within}
                out += [{"fusion": "rrf", "rank_constant": k, **base} for k in (10, 60) if margin is None]
                out += [{"fusion": "linear", "normalizer": n, **base}
                        for n in (("minmax", "l2_norm", "zscore") if margin is None else ("minmax", "zscore"))]
    return out


def fuse(config: dict[str, Any], leaves: dict[str, dict[str, dict[str, float]]], window: int,
         lang: dict[str, str] | None = None, similarity=None, query_language: dict[str, str] | None = None) -> dict:
    """``{qid: {doc: score}}`` of one configuration over the leaf runs (each ``{qid: {doc: score}}``, best first),
    as the service fuses them (:mod:`service.fusion`); ``lang``: each document's language (the language
    preference), ``similarity``: kNN score -> cosine (None: the runs hold cosines, as the offline ones do),
    ``query_language``: the language detected in each query's text."""
    names = [n for n in LEAVES if n in leaves and config["weights"].get(n, 0.0) > 0]
    gated = [n in LEXICAL for n in names]
    margin, k = config.get("margin"), config.get("gate") or 0
    gating = bool(k or margin is not None)
    gate = None
    if gating or config.get("within"):  # the query-adaptive rule: lexical leaves count when kNN backs their top hit
        gate = AgreementGate(reference=names.index("knn"), k=k, margin=margin,
                             anchor=names.index("exact") if gating and "exact" in names else None,
                             language_boost=float(config["weights"].get("language", 0.0)) if gating and lang else 0.0,
                             within=bool(config.get("within")))
    weights = [config["weights"][n] for n in names]
    out = {}
    for qid in leaves["knn"]:
        ranked = fusion.gated_fusion([list(leaves[n].get(qid, {}).items()) for n in names], weights, gated,
                                     kind=config["fusion"], normalizers=[config.get("normalizer", "none")] * len(names),
                                     rank_constant=config.get("rank_constant", 60), window=window, gate=gate,
                                     similarity=similarity, lang=lang,
                                     query_language=(query_language or {}).get(qid))
        out[qid] = dict(ranked[:window])
    return out


def settings_config(settings) -> dict[str, Any]:
    """The hybrid shorthand's fusion as configured in ``settings`` (the shipped default), in :func:`fuse`'s form."""
    return {"fusion": settings.hybrid_fusion, "normalizer": settings.hybrid_normalizer,
            "rank_constant": settings.rrf_rank_constant, "weights": dict(settings.hybrid_weights),
            "gate": settings.hybrid_gate_k or None, "margin": settings.hybrid_gate_margin,
            "within": settings.hybrid_within_knn}


def offline_leaves(bench: datasets.Benchmark, settings, window: int) -> dict[str, dict]:
    """kNN (exact cosine, the default int8 encoder, documents as the worker embeds them) and rank-bm25 runs."""
    from bench.adapters import knn_run
    from bench.evaluate import bm25_reference
    from pipelines.encoders.dense import open_encoder

    encoder = open_encoder(settings.resolved_model_dir, settings.dense_model, "int8")
    return {"knn": knn_run(encoder, bench, k=window), "bm25": bm25_reference(bench), "exact": exact_run(bench)}


def exact_title(text: str) -> str:
    """What ``title.exact`` compares: NFKC (the engine: cjk_width), lower case, accents folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).lower())
    return " ".join("".join(c for c in folded if not unicodedata.combining(c)).split())


def exact_run(bench: datasets.Benchmark) -> dict[str, dict[str, float]]:
    """Documents whose whole title is the query (score 1), per query."""
    by_title: dict[str, list[str]] = {}
    for doc_id, doc in bench.corpus.items():
        by_title.setdefault(exact_title(str(doc.get("title", ""))), []).append(doc_id)
    return {qid: {d: 1.0 for d in by_title.get(exact_title(text), [])} for qid, (text, _) in bench.queries.items()}


def without_own_documents(leaves: dict[str, dict], bench: datasets.Benchmark) -> dict[str, dict]:
    """Every leaf run without the query's own document (as ``bench.evaluate`` filters it out of each leaf)."""
    return {name: {q: {d: s for d, s in hits.items() if d != bench.own_doc.get(q)} for q, hits in run.items()}
            for name, run in leaves.items()}


def describe(config: dict[str, Any]) -> str:
    w = config["weights"]
    extra = f"k={config['rank_constant']}" if config["fusion"] == "rrf" else config["normalizer"]
    gate = f" gate@{config['gate']}" if config.get("gate") else ""
    gate += f" margin={config['margin']}" if config.get("margin") is not None else ""
    gate += f" language={w['language']}" if w.get("language") else ""
    within = " within-knn" if config.get("within") else ""
    exact = f" exact={w['exact']}" if w.get("exact") else ""
    return f"{config['fusion']:<6} {extra:<7} bm25={w['bm25']:<4} knn=1 sparse={w['sparse']:<4}{exact}{gate}{within}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100, help="taxonomy training queries per language")
    parser.add_argument("--distractors", type=int, default=1000, help="other taxonomy ids in the pool")
    parser.add_argument("--pairs", type=int, default=300, help="IKEA training pairs per language")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/results/fusion-tuning.json"))
    parser.add_argument("--offline", action="store_true",
                        help="leaves in memory (exact kNN, rank-bm25, no sparse) instead of through the stack")
    parser.add_argument("--leaves-cache", type=Path,
                        help="--offline: keep the leaf runs in PATH.<benchmark>.json and reuse them (same model only)")
    args = parser.parse_args(argv)
    settings = get_settings()
    taxonomy = datasets.taxonomy_xling(args.data, pool="mixed", queries_per_lang=args.queries,
                                       distractors=args.distractors, split="train",
                                       query_langs=datasets.MONO_LANGS)
    english = datasets.taxonomy_xling(args.data, pool="en", queries_per_lang=args.queries,
                                      distractors=args.distractors, split="train")
    ingested = [english, taxonomy, datasets.ikea_xling(args.data, limit=args.pairs, split="train")]
    window = settings.rank_window_size
    runs: dict[str, dict[str, dict]] = {}
    sparse, similarity = True, None
    for bench in ingested:
        if args.offline:  # exact kNN with the default encoder and rank-bm25, in memory: no queue, no engine
            cached = args.leaves_cache and args.leaves_cache.with_suffix(f".{bench.name}.json")
            if cached and cached.exists():
                runs[bench.name] = json.loads(cached.read_text())
            else:
                runs[bench.name] = offline_leaves(bench, settings, window)
                if cached:
                    cached.write_text(json.dumps(runs[bench.name]))
            runs[bench.name]["exact"] = exact_run(bench)
            runs[bench.name] = without_own_documents(runs[bench.name], bench)  # a cache may hold them
            sparse = False
            continue
        index = f"tune-{bench.name}"
        with served(bench, index, settings, args.out.parent, reuse_index=True) as (es, _):
            from pipelines.engine.dialect import dialect_for
            from service.state import Polyseek

            sparse = Polyseek(settings).dense(None).has_sparse
            similarity = dialect_for(settings.engine).knn_similarity  # the leaves hold engine scores
            leaf_methods = {m.name: m for m in methods(EVAL_FIELDS, sparse=sparse, reranker=None)
                            if m.name in LEAVES}
            runs[bench.name] = {name: run_method(es, index, bench, m)[0] for name, m in leaf_methods.items()}
            runs[bench.name]["exact"] = exact_run(bench)
    # the mixed taxonomy pool is scored twice: monolingual (every locale's query, only its own language relevant:
    # where BM25 should matter) and cross-lingual (non-English queries, every language's version relevant).  The
    # two disagree on the same ranking: monolingually the shopper's-language listings of related categories come
    # before other languages' versions of the query's own category, cross-lingually after.  The selection follows
    # the shopper (and the eval's sets): keep kNN on the English pool and IKEA, then the best monolingual score;
    # the mixed cross-lingual score is reported beside it.
    xling_mixed = datasets.Benchmark(taxonomy.name, corpus=taxonomy.corpus, own_doc=taxonomy.own_doc,
                                     queries={q: v for q, v in taxonomy.queries.items() if v[1] != "en"},
                                     qrels={q: r for q, r in taxonomy.qrels.items() if taxonomy.queries[q][1] != "en"})
    mono = datasets.monolingual(taxonomy)
    runs[mono.name] = runs[taxonomy.name]
    ikea = ingested[2]
    benches = [english, mono, ikea, xling_mixed]
    chosen_by = [english, mono, ikea]
    langs = {b.name: {d: doc["lang"] for d, doc in b.corpus.items()} for b in benches}
    detected = {q: detect_language(text) for b in benches for q, (text, _) in b.queries.items()}
    detected = {q: lang for q, lang in detected.items() if lang != UNDETERMINED}  # as SearchContext.query_language
    rows = []
    for config in tqdm(candidates(sparse), desc="fusions", unit="config"):
        per_bench = {b.name: score(b, fuse(config, runs[b.name], window, langs[b.name], similarity, detected),
                                   detail=False)["all"]["ndcg@10"] for b in benches}
        rows.append({"config": config, "ndcg@10": per_bench,
                     "mean": round(sum(per_bench[b.name] for b in chosen_by) / len(chosen_by), 4)})
    baselines = {name: {b.name: score(b, runs[b.name][name], detail=False)["all"]["ndcg@10"] for b in benches}
                 for name in LEAVES if name in runs[benches[0].name]}
    best_leaf = {b.name: max(res[b.name] for res in baselines.values()) for b in chosen_by}
    knn = baselines["knn"]
    for r in rows:
        # issue 11's rule: no worse than the best single leaf on any of the eval's sets; then: no worse than kNN
        # (the best leaf there) on both cross-lingual sets, then the best monolingual score
        r["no_worse_than_best_leaf"] = all(r["ndcg@10"][n] >= best_leaf[n] - 0.002 for n in best_leaf)
        r["keeps_knn_cross_lingual"] = all(r["ndcg@10"][b.name] >= knn[b.name] - 0.005 for b in (english, ikea))
    rows.sort(key=lambda r: (not r["no_worse_than_best_leaf"], not r["keeps_knn_cross_lingual"],
                             -r["ndcg@10"][mono.name], -r["mean"]))
    names = [b.name for b in benches]
    lines = [f"{'configuration':<64}" + "".join(f"{n:>28}" for n in names) + f"{'mean3':>8}"]
    for name, res in baselines.items():
        lines.append(f"{name + ' alone':<64}" + "".join(f"{res[n]:>28.4f}" for n in names)
                     + f"{sum(res[b.name] for b in chosen_by) / len(chosen_by):>8.4f}")
    current = settings_config(settings)
    shipped = next((r for r in rows if r["config"] == current), None)
    if shipped is None:  # the shipped default is off the grid: score it too
        per_bench = {b.name: score(b, fuse(current, runs[b.name], window, langs[b.name], similarity, detected),
                                   detail=False)["all"]["ndcg@10"] for b in benches}
        shipped = {"config": current, "ndcg@10": per_bench,
                   "mean": round(sum(per_bench[b.name] for b in chosen_by) / len(chosen_by), 4)}
    for label, r in [("settings (shipped default)", shipped)] + [(describe(r["config"]), r) for r in rows[:10]]:
        lines.append(f"{label:<64}" + "".join(f"{r['ndcg@10'][n]:>28.4f}" for n in names) + f"{r['mean']:>8.4f}")
    best = rows[0]["config"]
    lines.append("\nbest on training queries -> settings: POLYSEEK_HYBRID_FUSION=" + best["fusion"]
                 + " POLYSEEK_HYBRID_WEIGHTS='" + json.dumps(best["weights"]) + "'"
                 + (f" POLYSEEK_RRF_RANK_CONSTANT={best['rank_constant']}" if best["fusion"] == "rrf"
                    else f" POLYSEEK_HYBRID_NORMALIZER={best['normalizer']}")
                 + f" POLYSEEK_HYBRID_GATE_K={best.get('gate') or 0}"
                 + f" POLYSEEK_HYBRID_GATE_MARGIN={'null' if best.get('margin') is None else best['margin']}"
                 + f" POLYSEEK_HYBRID_WITHIN_KNN={str(bool(best.get('within'))).lower()}")
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmarks": {b.name: {"queries": len(b.queries), "documents": len(b.corpus)}
                                                   for b in benches},
                                    "baselines": baselines, "rows": rows, "best": best, "table": text}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
