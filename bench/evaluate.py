"""``polyseek eval``: quality of every retrieval method, side by side, through the real service.

Metrics come from ``ranx`` (nDCG@10, MRR@10, Recall@10/100), per method and per
(query language, document language) pair.  ``rank-bm25`` in memory is the
reference BM25.  Output: a terminal table, JSON and a PNG of the per-pair matrix.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.datasets import Benchmark
from pipelines.settings import get_settings
from service.retrievers import LEAVES

METRICS = ["ndcg@10", "mrr@10", "recall@10", "recall@100"]
WINDOW = 100


def _bm25(text: str, fields: list[str]) -> dict:
    return {"standard": {"query": {"multi_match": {"query": text, "fields": fields}}}}


def knn_candidates() -> int:
    """The kNN beam of every method, the hybrid shorthand's (``settings.hybrid_num_candidates``): kNN alone
    and inside the hybrid search the same candidates, so "hybrid vs kNN" compares fusion, not HNSW recall."""
    return get_settings().hybrid_num_candidates


def _knn(text: str) -> dict:
    return {"knn": {"field": "embedding", "k": WINDOW, "num_candidates": knn_candidates(),
                    "query_vector_builder": {"text_embedding": {"model_text": text}}}}


def _sparse(text: str) -> dict:
    return {"sparse": {"field": "sparse", "query": text}}


@dataclass
class Method:
    name: str
    body: Callable[[str], dict]


def engine_score_sum(fields: list[str], embed: Callable[[str], list[float]], dialect) -> Method:
    """The engine's own free hybrid: one ``bool`` query whose ``should`` holds the BM25 clause and a
    ``knn`` clause, scores summed by the engine (Elasticsearch's ``query`` + ``knn``, OpenSearch's
    ``bool`` + ``knn`` query; no plugin, no normalisation).  The vector comes from ``embed`` (the
    index's model, in the evaluating process) and the request passes through the service unchanged."""
    def body(text: str) -> dict:
        knn = dialect.knn_query("embedding", embed(text), WINDOW, knn_candidates())
        return {"query": {"bool": {"should": [{"multi_match": {"query": text, "fields": fields}}, knn]}}}

    return Method("engine score-sum", body)


def methods(fields: list[str], *, sparse: bool, reranker: str | None,
            engine_hybrid: Method | None = None) -> list[Method]:
    """Every method the service offers, as request bodies (and the engine's own hybrid, when given)."""
    def leaves(t: str) -> list[dict]:
        return [_bm25(t, fields), _knn(t)] + ([_sparse(t)] if sparse else [])

    out = [Method("bm25", lambda t: {"retriever": _bm25(t, fields)}),
           Method("knn", lambda t: {"retriever": _knn(t)})]
    if sparse:
        out.append(Method("sparse", lambda t: {"retriever": _sparse(t)}))
    out.append(Method("rrf", lambda t: {"retriever": {"rrf": {"retrievers": leaves(t), "rank_window_size": WINDOW}}}))
    for norm in ("minmax", "l2_norm", "zscore"):
        out.append(Method(f"linear-{norm}", lambda t, n=norm: {"retriever": {"linear": {
            "retrievers": [{"retriever": r, "weight": 1.0, "normalizer": n} for r in leaves(t)],
            "rank_window_size": WINDOW}}}))
    # the shorthand as the service runs it, with the fusion and weights in settings
    out.append(Method("hybrid (default)", lambda t: {"query": {"hybrid": {"query": t, "fields": fields,
                                                                          "rerank": False}}}))
    if engine_hybrid is not None:
        out.append(engine_hybrid)
    if reranker:
        out.append(Method("rrf+rerank", lambda t: {"retriever": {"text_similarity_reranker": {
            "retriever": {"rrf": {"retrievers": leaves(t), "rank_window_size": WINDOW}},
            "field": "title", "inference_text": t, "inference_id": reranker, "rank_window_size": 20}}}))
    return out


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def simple_tokens(text: str) -> list[str]:
    """Lowercased words; CJK runs as character bigrams (the reference BM25's analyzer)."""
    out = []
    for word in re.findall(r"\w+", text.lower()):
        if _CJK.search(word):
            out += [word[i:i + 2] for i in range(max(len(word) - 1, 1))]
        else:
            out.append(word)
    return out


def bm25_reference(bench: Benchmark) -> dict[str, dict[str, float]]:
    """rank-bm25 (Okapi) over title + category + description, in memory."""
    from rank_bm25 import BM25Okapi

    ids = list(bench.corpus)
    docs = [simple_tokens(" ".join(str(bench.corpus[i].get(f, "")) for f in ("title", "category", "description")))
            for i in ids]
    bm25 = BM25Okapi(docs)
    run = {}
    for qid, (text, _) in bench.queries.items():
        scores = bm25.get_scores(simple_tokens(text))
        top = sorted(range(len(ids)), key=lambda i: -scores[i])[:WINDOW + 1]
        hits = {ids[i]: float(scores[i]) for i in top if scores[i] > 0 and ids[i] != bench.own_doc.get(qid)}
        run[qid] = dict(list(hits.items())[:WINDOW])
    return run


def run_method(es, index: str, bench: Benchmark, method: Method, threads: int = 4) -> tuple[dict, list[float]]:
    """``{qid: {doc: score}}`` for every query, and each query's latency in ms (``threads`` at once).

    A latency counts from the text to the hits: building the request is inside it, so a method
    whose vector the evaluating process embeds (the engine's own hybrid) pays for the embedding
    as the service's methods do.

    A query whose own text is a document of the pool (IKEA: the description being translated)
    searches with that document filtered out of every leaf (:func:`excluding`): removed only
    afterwards (``post_filter`` applies after fusion, as in Elasticsearch), it would still steer
    the fusion (the gate sees BM25 and kNN agree on it, and prefers its language) in a way no
    shopper's query does.
    """
    def one(item: tuple[str, tuple[str, str]]) -> tuple[str, dict[str, float], float]:
        qid, (text, _) = item
        t0 = time.perf_counter()
        body = method.body(text)
        if bench.own_doc.get(qid):
            body = excluding(body, [bench.own_doc[qid]])
        resp = es.search(index=index, size=WINDOW, source=False, **body)
        return qid, {h["_id"]: float(h["_score"]) for h in resp["hits"]["hits"]}, time.perf_counter() - t0

    run, lat = {}, []
    with ThreadPoolExecutor(threads) as pool:
        for qid, hits, took in tqdm(pool.map(one, bench.queries.items()), total=len(bench.queries),
                                    desc=method.name, unit="q", leave=False):
            run[qid] = hits
            lat.append(1000 * took)
    return run, lat


def excluding(body: dict, ids: list[str]) -> dict:
    """``body`` with the documents ``ids`` filtered out of every leaf before any fusion: each leaf
    retriever's ``filter``, the hybrid shorthand's ``filter``, or a plain query's ``bool.must_not``."""
    not_these = {"bool": {"must_not": {"ids": {"values": ids}}}}

    def filtered(spec: dict) -> dict:  # a leaf's or the shorthand's ``filter`` (one clause or a list) plus ours
        have = spec.get("filter")
        return {**spec, "filter": ([*have] if isinstance(have, list) else [have] if have else []) + [not_these]}

    def tree(spec: dict) -> dict:
        ((kind, inner),) = spec.items()
        if kind in LEAVES:
            return {kind: filtered(inner)}
        if "retrievers" in inner:
            return {kind: {**inner, "retrievers": [{**e, "retriever": tree(e["retriever"])} if "retriever" in e
                                                   else tree(e) for e in inner["retrievers"]]}}
        return {kind: {**inner, "retriever": tree(inner["retriever"])}}

    if "retriever" in body:
        return {**body, "retriever": tree(body["retriever"])}
    if "hybrid" in body.get("query", {}):
        return {**body, "query": {"hybrid": filtered(body["query"]["hybrid"])}}
    return {**body, "query": {"bool": {"must": [body.get("query", {"match_all": {}})], **not_these["bool"]}}}


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values`` (every latency table of bench/ uses this one)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latency_stats(ms: list[float]) -> dict[str, float]:
    """Mean, p50 and p95 of per-query latencies in ms."""
    if not ms:
        return {"mean": float("nan"), "p50": float("nan"), "p95": float("nan")}
    return {"mean": round(float(np.mean(ms)), 1), "p50": round(percentile(ms, 50), 1),
            "p95": round(percentile(ms, 95), 1)}


def per_query_ndcg(bench: Benchmark, run: dict[str, dict[str, float]], k: int = 10) -> dict[str, float]:
    """nDCG@k of every scored query (the query's own text removed from its results)."""
    from ranx import Qrels, Run, evaluate

    qrels = {q: d for q, d in bench.qrels.items() if d}
    run = {q: ({d: s for d, s in run.get(q, {}).items() if d != bench.own_doc.get(q)} or {"__none__": 0.0})
           for q in qrels}
    values = evaluate(Qrels(qrels), Run(run), f"ndcg@{k}", return_mean=False, make_comparable=True)
    return dict(zip(sorted(qrels), (float(v) for v in values)))  # ranx orders queries by id


def bootstrap_ci(values: list[float], *, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``values`` (queries resampled with replacement)."""
    import numpy as np

    if not values:
        return float("nan"), float("nan")
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    return round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)


def own_language_share(bench: Benchmark, run: dict[str, dict[str, float]], k: int = 10) -> float | None:
    """Language bias: the share of a query's top ``k`` in its own language, over the queries whose
    relevant documents are all in other languages (the query's own text not counted).

    An unbiased cross-lingual retriever puts ~0 there (every own-language hit is wrong);
    ``None`` where the benchmark has no such query or a single document language.
    """
    if len({d["lang"] for d in bench.corpus.values()}) < 2:
        return None
    shares = []
    for qid, (_, lang) in bench.queries.items():
        rel = bench.qrels.get(qid, {})
        if not rel or any(bench.doc_lang(d) == lang for d in rel):
            continue
        top = sorted(((s, d) for d, s in run.get(qid, {}).items() if d != bench.own_doc.get(qid)
                      and d in bench.corpus), reverse=True)[:k]
        if top:
            shares.append(sum(bench.doc_lang(d) == lang for _, d in top) / len(top))
    return round(sum(shares) / len(shares), 4) if shares else None


def lareqa_map(bench: Benchmark, run: dict[str, dict[str, float]]) -> float:
    """LAReQA-style mAP@20: every other language's version of the query's item is relevant, the
    query's own-language version is left out of the ranking (a retriever with strong alignment
    ranks all of them above every other item, in whatever language)."""
    from ranx import Qrels, Run, evaluate

    qrels = {q: rel for q, rel in bench.lareqa.items() if rel}
    rn = {q: ({d: s for d, s in run.get(q, {}).items() if d != bench.lareqa_skip.get(q)} or {"__none__": 0.0})
          for q in qrels}
    return round(float(evaluate(Qrels(qrels), Run(rn), "map@20", make_comparable=True)), 4)


def score(bench: Benchmark, run: dict[str, dict[str, float]], *, detail: bool = True) -> dict[str, Any]:
    """Overall and per (query lang -> doc lang) metrics with ranx, a bootstrap interval of nDCG@10
    and the own-language share of the top 10."""
    from ranx import Qrels, Run, evaluate

    def ev(qrels: dict, rn: dict) -> dict[str, float]:
        qrels = {q: d for q, d in qrels.items() if d}
        if not qrels:
            return {}
        rn = {q: (rn.get(q) or {"__none__": 0.0}) for q in qrels}
        res = evaluate(Qrels(qrels), Run(rn), METRICS, make_comparable=True)
        return {m: round(float(v), 4) for m, v in res.items()}

    run = {q: {d: s for d, s in hits.items() if d != bench.own_doc.get(q)} for q, hits in run.items()}
    out: dict[str, Any] = {"all": ev(bench.qrels, run), "pairs": {}}
    if not detail:  # fitting: the overall metrics only
        return out
    out["ndcg@10_ci95"] = bootstrap_ci(list(per_query_ndcg(bench, run).values()))
    out["own_lang_share@10"] = own_language_share(bench, run)
    if bench.lareqa:
        out["lareqa_map@20"] = lareqa_map(bench, run)
    qlangs = sorted({lang for _, lang in bench.queries.values()})
    dlangs = sorted({d["lang"] for d in bench.corpus.values()})
    for ql in qlangs:
        for dl in dlangs:
            qids = [q for q, (_, lang) in bench.queries.items() if lang == ql]
            qrels = {q: {d: g for d, g in bench.qrels[q].items() if bench.doc_lang(d) == dl} for q in qids}
            rn = {q: {d: s for d, s in run.get(q, {}).items() if d in bench.corpus and bench.doc_lang(d) == dl}
                  for q in qids}
            res = ev(qrels, rn)
            if res:
                out["pairs"][f"{ql}->{dl}"] = res
    return out


def paired_delta(bench: Benchmark, run: dict, reference: dict) -> dict[str, Any]:
    """Mean nDCG@10 difference of ``run`` minus ``reference`` over the same queries, with its 95% interval."""
    a, b = per_query_ndcg(bench, run), per_query_ndcg(bench, reference)
    diffs = [a[q] - b[q] for q in a if q in b]
    return {"delta": round(sum(diffs) / max(len(diffs), 1), 4), "ci95": bootstrap_ci(diffs)}


def _fmt(value: float | None, width: int, digits: int = 3) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def table(results: dict[str, dict[str, Any]], latency: dict[str, dict[str, float]]) -> str:
    lines = [f"{'method':<18}" + "".join(f"{m:>12}" for m in METRICS) + f"{'p50 ms':>9}{'p95 ms':>9}"
             + f"{'nDCG@10 95% CI':>18}{'vs knn (paired)':>26}{'own-lang@10':>13}"
             + (f"{'LAReQA mAP@20':>15}" if any("lareqa_map@20" in r for r in results.values()) else "")]
    for name, res in results.items():
        lo, hi = res.get("ndcg@10_ci95", (float("nan"), float("nan")))
        vs = res.get("vs_knn")
        vs_text = f"{vs['delta']:+.3f} [{vs['ci95'][0]:+.3f},{vs['ci95'][1]:+.3f}]" if vs else "-"
        lines.append(f"{name:<18}" + "".join(f"{res['all'].get(m, float('nan')):>12.4f}" for m in METRICS)
                     + "".join(f"{latency.get(name, {}).get(k, float('nan')):>9.1f}" for k in ("p50", "p95"))
                     + f"{f'[{lo:.3f}, {hi:.3f}]':>18}"
                     + f"{vs_text:>26}" + _fmt(res.get("own_lang_share@10"), 13)
                     + (_fmt(res["lareqa_map@20"], 15, 4) if "lareqa_map@20" in res else ""))
    pairs = sorted({p for r in results.values() for p in r["pairs"]})
    lines.append("\nnDCG@10 per (query lang -> doc lang)")
    lines.append(f"{'method':<18}" + "".join(f"{p:>9}" for p in pairs))
    for name, res in results.items():
        lines.append(f"{name:<18}" + "".join(f"{res['pairs'].get(p, {}).get('ndcg@10', float('nan')):>9.3f}"
                                             for p in pairs))
    return "\n".join(lines)


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Heatmap: methods x language pairs, nDCG@10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    pairs = sorted({p for r in results.values() for p in r["pairs"]})
    grid = [[results[n]["pairs"].get(p, {}).get("ndcg@10", 0.0) for p in pairs] for n in names]
    fig, ax = plt.subplots(figsize=(1.1 * len(pairs) + 3, 0.5 * len(names) + 2))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(pairs)), pairs, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    fig.colorbar(im, label="nDCG@10")
    ax.set_title("nDCG@10 per query -> document language")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_benchmark(bench: Benchmark, es, index: str, *, fields: list[str], sparse: bool,
                       reranker: str | None, out_dir: Path, engine_hybrid: Method | None = None,
                       only: list[str] | None = None) -> dict[str, Any]:
    """Every method (or those named in ``only``) on one ingested benchmark; writes JSON and PNG into ``out_dir``."""
    results: dict[str, dict[str, Any]] = {}
    latency: dict[str, dict[str, float]] = {}
    runs: dict[str, dict] = {}
    runs["bm25 (rank-bm25)"] = bm25_reference(bench)  # in memory: a reference, no latency
    for method in methods(fields, sparse=sparse, reranker=reranker, engine_hybrid=engine_hybrid):
        if only and method.name not in only and method.name != "knn":  # kNN: the paired reference
            continue
        runs[method.name], ms = run_method(es, index, bench, method)
        latency[method.name] = latency_stats(ms)
    for name, run in runs.items():
        results[name] = score(bench, run)
        if name != "knn" and "knn" in runs:
            results[name]["vs_knn"] = paired_delta(bench, run, runs["knn"])
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": bench.name, "queries": len(bench.queries), "documents": len(bench.corpus),
              "results": results, "latency_ms": latency}
    report["table"] = table(results, latency)
    (out_dir / f"{bench.name}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    plot(results, out_dir / f"{bench.name}.png")
    return report
