"""Train the reranker on the adapted encoder on a lent GPU, then measure it on the dev sets in memory.

- ``pack`` (here): the *training* split as ranking tasks shaped like the dev sets (taxonomy leaves in
  de/fr/es/ja/zh -> the English pool; every locale's leaf -> its own language's category in the
  six-language pool; IKEA ``train`` de/fr -> en and en -> de/fr in the de/fr/en pool; taxonomy ids
  ``% 5 == 0`` removed from every pool and every relevance list), the dev sets' first-stage candidates
  (exact int8 kNN and the shipped hybrid default, top 50, in memory as ``bench.tune_fusion --offline``
  computes them) and the exact Q4_0 base cut to the tokens all these texts use
  (:func:`bench.device_finetune.pack_base`), into ``.gpu/reranker/`` (git-ignored, carried).
- ``train`` (GPU machine, or here slowly): merges the shipped encoder adapter into the slim base,
  mines hard negatives with that adapted encoder, trains the cross-encoder adapter
  (:mod:`pipelines.models.train_reranker`) and scores every dev candidate (fp32) into ``--out``.
- ``measure`` (here): nDCG@10 of each first stage and of first stage + reranker (windows 20 and 50)
  with paired 95% bootstrap intervals, the int8 ONNX reranker against the GPU's scores on a slice,
  and its CPU latency for a window of 20.  Prints the table, writes ``bench/results/reranker.json``.

    python -m bench.device_reranker pack --data ../shared/data
    # device: python3 -m bench.device_reranker train --out $OUT
    python -m bench.device_reranker measure --scores DIR/dev-scores.json.gz --adapter DIR/reranker-lora
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PACK = Path(".gpu/reranker")
DEV_SETS = {"taxonomy-xling": 150, "ikea-xling": None, "taxonomy-mono": 100}  # queries per language / IKEA pairs
FIRST_STAGES = ("knn", "hybrid")
DEPTH = 50  # first-stage candidates kept per query (the largest rerank window)
WINDOWS = (20, 50)
RESULTS = Path("bench/results")
Run = dict[str, dict[str, float]]


# --- pack (here) -------------------------------------------------------------------------------------------------

def training_only(bench):
    """``bench`` with every taxonomy evaluation id (``id % 5 == 0``) removed from its pool and relevance lists."""
    from bench.datasets import Benchmark
    from pipelines.models.training_data import is_eval_id

    def allowed(doc_id: str) -> bool:
        head = doc_id.split("-")[0]
        return not (head.isdigit() and is_eval_id(int(head)))

    corpus = {d: doc for d, doc in bench.corpus.items() if allowed(d)}
    qrels = {q: {d: g for d, g in rel.items() if d in corpus} for q, rel in bench.qrels.items()}
    return Benchmark(bench.name, corpus=corpus, queries=bench.queries, qrels=qrels, own_doc=bench.own_doc)


def training_benchmarks(data: Path) -> list:
    """The three training-split ranking tasks, graded as the dev sets grade (see the module docstring)."""
    from bench import datasets

    mixed = datasets.taxonomy_xling(data, pool="mixed", split="train", query_langs=datasets.MONO_LANGS)
    return [training_only(b) for b in (datasets.taxonomy_xling(data, pool="en", split="train"),
                                       datasets.monolingual(mixed), datasets.ikea_xling(data, split="train"))]


def task_json(bench) -> dict[str, Any]:
    """A benchmark as the GPU side needs it: passages as embedded and as reranked, queries, graded
    relevance and the query's own passage, by position."""
    from pipelines.schema import rerank_text
    from pipelines.schema import embedding_text

    ids = list(bench.corpus)
    index = {d: i for i, d in enumerate(ids)}
    qids = [q for q in bench.queries if bench.qrels.get(q)]
    return {"embed": [embedding_text(bench.corpus[d]) for d in ids],
            "rerank": [rerank_text(bench.corpus[d]) for d in ids],
            "queries": [bench.queries[q][0] for q in qids],
            "qrels": [{index[d]: g for d, g in bench.qrels[q].items()} for q in qids],
            "exclude": [index.get(bench.own_doc.get(q, "")) for q in qids]}


def dev_benchmarks(data: Path) -> dict[str, Any]:
    """The dev sets as the README's real-stack tables use them (750, 1,094 and 600 queries)."""
    from bench import datasets

    return {name: datasets.load(name, data, limit=limit) for name, limit in DEV_SETS.items()}


def _best_first(run: Run, depth: int) -> Run:
    return {q: dict(sorted(hits.items(), key=lambda kv: -kv[1])[:depth]) for q, hits in run.items()}


def first_stages(bench, settings, depth: int = DEPTH) -> dict[str, Run]:
    """Exact int8 kNN and the shipped hybrid default (rank-bm25 and the exact-title leaf fused by the
    settings' fusion), in memory, the query's own document removed: each query's top ``depth``."""
    from bench.tune_fusion import fuse, offline_leaves, settings_config, without_own_documents

    window = settings.rank_window_size
    leaves = without_own_documents(offline_leaves(bench, settings, window), bench)
    return {"knn": _best_first(leaves["knn"], depth),
            "hybrid": _best_first(fuse(settings_config(settings), leaves, window), depth)}


def cached_first_stages(benches: dict[str, Any], settings, path: Path = RESULTS / "reranker-first-stage.json") -> dict:
    """:func:`first_stages` of every dev set, kept in ``path`` for the same dense model and fusion."""
    from bench.tune_fusion import settings_config

    key = {"model": settings.dense_model, "fusion": settings_config(settings)}
    if path.exists():
        cached = json.loads(path.read_text())
        if cached["key"] == key and set(cached["runs"]) == set(benches):
            return cached["runs"]
    runs = {name: first_stages(bench, settings) for name, bench in benches.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "runs": runs}))
    return runs


def pack(data: Path, base_dir: Path, out: Path = PACK) -> dict[str, Any]:
    """Write training tasks, dev candidates and the slim base to ``out``; return file sizes."""
    from bench.device_finetune import pack_base
    from pipelines.schema import rerank_text
    from pipelines.models.card import ModelPaths
    from pipelines.settings import get_settings

    base = ModelPaths(base_dir)
    card = base.read_card()
    tasks = {b.name: task_json(b) for b in training_benchmarks(data)}
    benches = dev_benchmarks(data)
    stages = cached_first_stages(benches, get_settings())
    dev = {}
    for name, bench in benches.items():
        candidates = {q: list(dict.fromkeys(d for stage in FIRST_STAGES for d in stages[name][stage].get(q, {})))
                      for q in bench.queries}
        docs = sorted({d for c in candidates.values() for d in c})
        dev[name] = {"queries": {q: bench.queries[q][0] for q in candidates}, "candidates": candidates,
                     "docs": {d: rerank_text(bench.corpus[d]) for d in docs}}
    out.mkdir(parents=True, exist_ok=True)
    for file, obj in (("tasks.json.gz", tasks), ("dev.json.gz", dev)):
        with gzip.open(out / file, "wt", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False)
    texts = [card.query_prefix + q for t in tasks.values() for q in t["queries"]]
    texts += [card.passage_prefix + p for t in tasks.values() for key in ("embed", "rerank") for p in t[key]]
    texts += [card.query_prefix + q for d in dev.values() for q in d["queries"].values()]
    texts += [card.passage_prefix + p for d in dev.values() for p in d["docs"].values()]
    sizes = pack_base(base, texts, out)
    return sizes | {"groups": {n: len(t["queries"]) for n, t in tasks.items()},
                    "dev_pairs": {n: sum(map(len, d["candidates"].values())) for n, d in dev.items()}}


# --- train (GPU machine) -----------------------------------------------------------------------------------------

def _read(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def subset_task(task: dict[str, Any], queries: int, passages: int) -> dict[str, Any]:
    """The first ``queries`` queries of a task over its first ``passages`` passages plus those they need
    (a smoke test on the CPU)."""
    keep = sorted(set(range(min(passages, len(task["embed"]))))
                  | {int(d) for rel in task["qrels"][:queries] for d in rel}
                  | {e for e in task["exclude"][:queries] if e is not None})
    new = {old: i for i, old in enumerate(keep)}
    return {"embed": [task["embed"][i] for i in keep], "rerank": [task["rerank"][i] for i in keep],
            "queries": task["queries"][:queries],
            "qrels": [{new[int(d)]: g for d, g in rel.items()} for rel in task["qrels"][:queries]],
            "exclude": [new.get(e) if e is not None else None for e in task["exclude"][:queries]]}


def mine(encoder, tasks: dict[str, dict], *, depth: int, group_size: int, seed: int, max_length: int = 256) -> list:
    """Ranking groups of every task, hard negatives from ``encoder`` (a model-cache dense model) in torch."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    from pipelines.models.finetune import embed_texts
    from pipelines.models.train_reranker import mine_groups, nearest

    card = encoder.read_card()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModel.from_pretrained(encoder.hf, add_pooling_layer=False).to(device).eval()
    tok = Tokenizer.from_file(str(encoder.tokenizer))
    groups = []
    for name, task in tasks.items():
        docs = embed_texts(model, tok, [card.passage_prefix + t for t in task["embed"]], max_length)
        queries = embed_texts(model, tok, [card.query_prefix + q for q in task["queries"]], max_length)
        ranked = nearest(queries.to(device), docs.to(device), depth + 3)
        qrels = [{int(d): g for d, g in rel.items()} for rel in task["qrels"]]
        groups += mine_groups(task["queries"], task["rerank"], ranked, qrels, exclude=task["exclude"], depth=depth,
                              group_size=group_size, source=name, seed=seed)
    del model
    return groups


def score_dev(model, tok, card, pad_id: int, dev: dict[str, dict], batch_size: int = 512) -> dict[str, Run]:
    """The trained cross-encoder's logit for every dev (query, candidate) pair."""
    import torch

    from pipelines.models.train_reranker import pair_logits

    out: dict[str, Run] = {}
    with torch.no_grad():
        for name, d in dev.items():
            pairs = [(q, doc) for q, cands in d["candidates"].items() for doc in cands]
            scores: list[float] = []
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                scores += pair_logits(model, tok, card, [d["queries"][q] for q, _ in chunk],
                                      [d["docs"][doc] for _, doc in chunk], pad_id).float().cpu().tolist()
            out[name] = {}
            for (q, doc), s in zip(pairs, scores):
                out[name].setdefault(q, {})[doc] = round(s, 5)
    return out


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Slim base + shipped encoder adapter -> mined groups -> reranker adapter in ``args.out`` -> dev scores."""
    from bench.device_finetune import unpack
    from pipelines.models.adapters import SHIPPED, adapter_sha256
    from pipelines.models.card import ModelPaths
    from pipelines.models.finetune import apply_adapter
    from pipelines.models.train_reranker import RerankerTrainConfig, open_tokenizer, train_reranker

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks, dev = _read(PACK / "tasks.json.gz"), _read(PACK / "dev.json.gz")
    if args.limit:
        tasks = {n: subset_task(t, args.limit, 10 * args.limit) for n, t in tasks.items()}
        dev = {n: {**d, "candidates": dict(list(d["candidates"].items())[:args.limit])} for n, d in dev.items()}
    cfg = RerankerTrainConfig(lora_r=args.rank, lora_alpha=2 * args.rank, lr=args.lr, epochs=args.epochs,
                              queries_per_step=args.queries_per_step, group_size=args.group_size,
                              max_length=args.max_length, max_steps=args.max_steps, time_budget_s=args.budget_s,
                              seed=args.seed)
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        shipped = SHIPPED["polyseek-e5-small"]
        base = unpack(PACK, Path(tmp) / shipped.base_name)
        adapted = ModelPaths(Path(tmp) / shipped.name)
        apply_adapter(base, adapted, shipped.adapter_dir)
        timings["unpack_s"] = round(time.perf_counter() - t0, 1)
        groups = mine(adapted, tasks, depth=args.depth, group_size=args.group_size, seed=args.seed)
        timings["mine_s"] = round(time.perf_counter() - t0 - timings["unpack_s"], 1)
        note = ("shared data training split (taxonomy ids % 5 != 0, IKEA train); hard negatives from "
                f"{shipped.name} (top {args.depth}; encoder adapter sha256 {adapter_sha256(shipped.adapter_dir)})")
        stats, model, tok = train_reranker(adapted, ModelPaths(Path(tmp) / "reranker"), groups, cfg,
                                           adapter_dir=out / "reranker-lora", data_note=note, progress=False)
        t1 = time.perf_counter()
        _, pad_id = open_tokenizer(adapted, cfg.max_length)
        scores = score_dev(model, tok, adapted.read_card(), pad_id, dev)
        timings["score_dev_s"] = round(time.perf_counter() - t1, 1)
    with gzip.open(out / "dev-scores.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(scores, fh)
    report = {k: v for k, v in stats.items() if k != "config"} | timings | {
        "groups_per_task": {n: sum(g.source == n for g in groups) for n in tasks}}
    (out / "train-report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return report


# --- measure (here) ----------------------------------------------------------------------------------------------

def rerank(run: Run, scores: dict[str, dict[str, float]], window: int) -> Run:
    """Each query's top ``window`` of ``run`` reordered by ``scores``, the rest below in their order
    (as the service's ``text_similarity_reranker`` does); scores are rank-based."""
    out = {}
    for q, hits in run.items():
        ranked = sorted(hits, key=lambda d: -hits[d])
        head = sorted(ranked[:window], key=lambda d: -scores.get(q, {}).get(d, float("-inf")))
        order = head + ranked[window:]
        out[q] = {d: float(len(order) - i) for i, d in enumerate(order)}
    return out


def summary(bench, run: Run, reference: Run | None) -> dict[str, Any]:
    """nDCG@10 with its bootstrap interval, the paired difference from ``reference`` and the own-language share."""
    from bench.evaluate import bootstrap_ci, own_language_share, paired_delta, per_query_ndcg

    per_query = per_query_ndcg(bench, run)
    out = {"ndcg@10": round(sum(per_query.values()) / len(per_query), 4),
           "ci95": bootstrap_ci(list(per_query.values())), "own_lang@10": own_language_share(bench, run)}
    if reference is not None:
        out["vs_first_stage"] = paired_delta(bench, run, reference)
    return out


def int8_check(adapter: Path, benches: dict[str, Any], stages: dict, gpu_scores: dict, per_set: int) -> dict:
    """The int8 ONNX reranker (built here from ``adapter`` as a shipped one would be) on each set's first
    ``per_set`` queries, window 20 over the hybrid: nDCG@10 against the GPU's fp32 scores, and ms per query."""
    from pipelines.encoders.cross import CrossEncoder
    from pipelines.schema import rerank_text
    from pipelines.models.card import ModelPaths
    from pipelines.models.export import export_onnx, quantize_int8
    from pipelines.models.train_reranker import apply_reranker_adapter
    from pipelines.settings import get_settings

    model_dir = get_settings().resolved_model_dir
    target = ModelPaths(model_dir / "cand-reranker")
    if not target.onnx_int8.exists():
        apply_reranker_adapter(ModelPaths(model_dir / get_settings().dense_model), target, adapter)
        export_onnx(target)
        quantize_int8(target)
    encoder = CrossEncoder(target, "int8")
    out = {}
    for name, bench in benches.items():
        qids = list(stages[name]["hybrid"])[:per_set]
        first = {q: stages[name]["hybrid"][q] for q in qids}
        local: dict[str, dict[str, float]] = {}
        took = []
        for q in qids:
            head = sorted(first[q], key=lambda d: -first[q][d])[:20]
            t0 = time.perf_counter()
            s = encoder.score(bench.queries[q][0], [rerank_text(bench.corpus[d]) for d in head])
            took.append(1000 * (time.perf_counter() - t0))
            local[q] = dict(zip(head, map(float, s)))
        sub = type(bench)(bench.name, corpus=bench.corpus, own_doc=bench.own_doc,
                          queries={q: bench.queries[q] for q in qids}, qrels={q: bench.qrels[q] for q in qids})
        took.sort()
        out[name] = {"queries": len(qids), "first_stage": summary(sub, first, None)["ndcg@10"],
                     "int8": summary(sub, rerank(first, local, 20), None)["ndcg@10"],
                     "gpu_fp32": summary(sub, rerank(first, gpu_scores[name], 20), None)["ndcg@10"],
                     "ms_p50": round(took[len(took) // 2], 1), "ms_p95": round(took[int(0.95 * (len(took) - 1))], 1)}
    return out


def table(results: dict[str, dict[str, dict]], benches: dict[str, Any]) -> str:
    """nDCG@10 [95% CI] per method and dev set; reranked rows add the paired difference from their first stage."""
    names = list(benches)
    lines = [f"{'nDCG@10 (in memory)':<22}" + "".join(f"{f'{n} ({len(benches[n].qrels)} q)':<36}" for n in names)]
    for method, per_set in results.items():
        cells = []
        for n in names:
            r = per_set[n]
            vs = r.get("vs_first_stage")
            cells.append(f"{r['ndcg@10']:.4f} " + (f"{vs['delta'] * 100:+.1f} [{vs['ci95'][0] * 100:+.1f},"
                                                      f"{vs['ci95'][1] * 100:+.1f}]" if vs else
                                                      f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"))
        lines.append(f"{method:<22}" + "".join(f"{c:<36}" for c in cells))
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The dev-set table from the GPU's scores, the int8 check and latency; writes ``bench/results/reranker.json``."""
    from pipelines.settings import get_settings

    benches = dev_benchmarks(args.data)
    stages = cached_first_stages(benches, get_settings())
    scores = _read(args.scores)
    results: dict[str, dict[str, dict]] = {}
    for stage in FIRST_STAGES:
        results[stage] = {n: summary(b, stages[n][stage], None) for n, b in benches.items()}
        for window in WINDOWS:
            results[f"{stage} + rerank@{window}"] = {
                n: summary(b, rerank(stages[n][stage], scores[n], window), stages[n][stage]) for n, b in benches.items()}
    text = table(results, benches)
    report: dict[str, Any] = {"results": results, "table": text}
    if args.adapter:
        report["int8"] = int8_check(args.adapter, benches, stages, scores, args.int8_queries)
    if (args.scores.parent / "train-report.json").exists():
        report["training"] = json.loads((args.scores.parent / "train-report.json").read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reranker.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(text)
    if "int8" in report:
        print(json.dumps(report["int8"], indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.device_reranker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write .gpu/reranker/ (training tasks, dev candidates, slim base)")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--base", type=Path, default=Path.home() / ".cache/polyseek/models/multilingual-e5-small")
    t = sub.add_parser("train", help="mine, train the reranker adapter, score the dev candidates (GPU machine)")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--rank", type=int, default=32)
    t.add_argument("--queries-per-step", type=int, default=32)
    t.add_argument("--group-size", type=int, default=8)
    t.add_argument("--depth", type=int, default=30, help="hard negatives come from the encoder's top DEPTH")
    t.add_argument("--max-length", type=int, default=128)
    t.add_argument("--max-steps", type=int)
    t.add_argument("--budget-s", type=float, help="training wall-clock budget (the schedule decays over it)")
    t.add_argument("--limit", type=int, help="smoke test: queries per task and dev set")
    t.add_argument("--seed", type=int, default=11)
    m = sub.add_parser("measure", help="the dev-set table from the scores `train` wrote")
    m.add_argument("--scores", type=Path, required=True)
    m.add_argument("--adapter", type=Path, help="the trained adapter: also check int8 ONNX and CPU latency")
    m.add_argument("--int8-queries", type=int, default=100, help="queries per set in the int8 check")
    m.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args(argv)
    if args.cmd == "pack":
        print(json.dumps(pack(args.data, args.base), indent=2))
    elif args.cmd == "train":
        train(args)
    else:
        measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
