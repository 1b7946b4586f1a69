"""Semantic IDs: do codes group one product's language versions, and what does collapse change?

    python -m bench.semantic_ids [--data ../shared/data] [--ikea-queries 200] [--out bench/results]

1. **Pairs** (in memory, the index's own encoder): on the demo catalog (41 products x 6
   languages, ``p000-en`` ... ``p000-zh`` are one product) and on the IKEA ``val`` aligned
   descriptions (each English text with its German and French versions is one product),
   precision/recall of "same product" pairs when two documents share a code prefix, per
   level, for the default fit and a sweep of codes per level; and for a cosine threshold
   alone and combined with the first level (the near-duplicate rule).
2. **Collapse through the stack** (real engine and service, the codes written by the
   service's synchronous ``_bulk``): for the demo queries and IKEA queries, distinct
   products in the top 10 and nDCG@10 counted per product group, collapse off vs on
   (``semantic_id_l1``); query latency with and without collapse.
3. **Cost**: fit seconds, codes per second, bytes per document.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import httpx
import numpy as np

from bench.demo import CATALOG
from bench.eval_run import DEFAULT_DATA
from pipelines.models.semantic_ids import fit
from pipelines.models.training_data import read_ikea
from pipelines.settings import get_settings

LANGS = ("en", "de", "fr", "es", "ja", "zh")
# the demo's queries (bench/demo.py) and a few more, each with the product it asks for
DEMO_QUERIES = [("无线降噪耳机", "p000"), ("kabellose Kopfhörer", "p000"), ("silla de oficina ergonómica", "p018"),
                ("防水アクションカメラ", "p008"), ("cafetière à piston", "p010"), ("robot vacuum", "p016"),
                ("Wasserkocher mit Temperaturregelung", "p012"), ("tente de camping deux places", "p029"),
                ("ランニングシューズ 女性", "p031"), ("cepillo de dientes eléctrico", "p035"),
                ("儿童自行车", "p028"), ("garden hose", "p024")]


def demo_catalog() -> tuple[list[dict], list[str]]:
    docs = [json.loads(line) for line in CATALOG.read_text().splitlines()]
    return docs, [d["id"].split("-")[0] for d in docs]


def ikea_catalog(data_dir: Path) -> tuple[list[dict], list[str]]:
    """English texts with their German/French versions: one group per English text."""
    docs, groups, english = [], [], {}
    for other in ("de", "fr"):
        en, fo = read_ikea(data_dir, "val", f"en-{other}")
        for e, f in zip(en, fo):
            if e not in english:
                english[e] = f"ikea{len(english):04d}"
                docs.append({"id": f"{english[e]}-en", "title": e[:80], "description": e, "lang": "en"})
                groups.append(english[e])
            docs.append({"id": f"{english[e]}-{other}-{len(docs)}", "title": f[:80], "description": f, "lang": other})
            groups.append(english[e])
    return docs, groups


def embed(docs: list[dict], cache: Path) -> np.ndarray:
    """The stored-vector of each document, as a worker computes it (cached on disk)."""
    from pipelines.encoders.dense import open_encoder
    from pipelines.schema import embedding_text

    if cache.exists():
        return np.load(cache)
    s = get_settings()
    enc = open_encoder(s.resolved_model_dir, s.dense_model, s.encoder_precision, threads=s.encoder_threads)
    vecs = enc.encode_documents([embedding_text(d) for d in docs], chunk_tokens=s.chunk_tokens,
                                overlap=s.chunk_overlap, max_chunks=s.max_chunks).dense
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs


def pair_scores(pred: np.ndarray, same: np.ndarray) -> dict[str, float]:
    iu = np.triu_indices(len(same), 1)
    p, s = pred[iu], same[iu]
    tp = int((p & s).sum())
    precision = tp / max(int(p.sum()), 1)
    recall = tp / max(int(s.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), "pairs": int(p.sum())}


def pairs_report(name: str, vecs: np.ndarray, groups: list[str], langs: list[str]) -> dict:
    g = np.asarray(groups)
    same = g[:, None] == g[None, :]
    out: dict = {"catalog": name, "documents": len(groups), "products": len(set(groups)), "fits": [], "cosine": []}
    for codes, centred in ((16, True), (32, True), (64, True), (128, True), (256, True), (256, False)):
        t0 = time.perf_counter()
        q = fit(vecs, langs if centred else None, levels=3, codes=codes)
        seconds = time.perf_counter() - t0
        c = q.encode(vecs, langs if centred else None)
        levels = []
        for level in range(1, q.levels + 1):
            key = np.array(["-".join(map(str, r[:level])) for r in c])
            levels.append({"level": level, "groups": len(set(key)), **pair_scores(key[:, None] == key[None, :], same)})
        out["fits"].append({"codes": codes, "centred": centred, "sizes": q.sizes, "fit_s": round(seconds, 2),
                            "levels": levels})
    cos = vecs @ vecs.T
    q = fit(vecs, langs, levels=3, codes=256)
    centred = q.prepare(vecs, langs)
    ccos = centred @ centred.T
    first = q.encode(vecs, langs)[:, 0]
    block = first[:, None] == first[None, :]
    for t in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9):
        out["cosine"].append({"min_cosine": t, "cosine_alone": pair_scores(cos >= t, same),
                              "centred": pair_scores(ccos >= t, same),
                              "centred_with_level_1": pair_scores((ccos >= t) & block, same)})
    return out


def cost_report(dims: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10_000, dims)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0 = time.perf_counter()
    q = fit(x, levels=3, codes=256)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fields = q.fields(x)
    per_s = len(x) / (time.perf_counter() - t0)
    size = statistics.mean(len(json.dumps(f)) for f in fields[:1000])
    return {"fit_s_10k_x_3x256": round(fit_s, 1), "codes_per_s": int(per_s), "source_bytes_per_doc": round(size, 1),
            "codebooks_bytes": len(q.to_bytes())}


# --- through the stack --------------------------------------------------------------------------

def load_index(url: str, index: str, docs: list[dict]) -> None:
    """The catalog through the service's synchronous ``_bulk`` (the service embeds and codes)."""
    for start in range(0, len(docs), 128):
        lines = []
        for d in docs[start:start + 128]:
            lines += [json.dumps({"index": {"_index": index, "_id": d["id"]}}), json.dumps(d, ensure_ascii=False)]
        resp = httpx.post(f"{url}/_bulk", content=("\n".join(lines) + "\n").encode(),
                          headers={"content-type": "application/x-ndjson"}, timeout=600)
        resp.raise_for_status()
        assert not resp.json()["errors"], resp.text[:500]
    httpx.post(f"{url}/{index}/_refresh", timeout=60).raise_for_status()


def ndcg_groups(ranked_groups: list[str], gains: dict[str, float], k: int = 10) -> float:
    """nDCG@k where each product group earns its gain once (at its first position)."""
    seen, dcg = set(), 0.0
    for rank, grp in enumerate(ranked_groups[:k], 1):
        if grp not in seen:
            dcg += gains.get(grp, 0.0) / math.log2(rank + 1)
            seen.add(grp)
    ideal = sum(gv / math.log2(r + 1) for r, gv in enumerate(sorted(gains.values(), reverse=True)[:k], 1))
    return dcg / ideal if ideal else 0.0


COLLAPSE_SETTINGS = (("off", None), ("on semantic_id_l1", "semantic_id_l1"), ("on semantic_id_l2", "semantic_id_l2"))


def collapse_report(url: str, index: str, queries: list[tuple[str, dict[str, float], str | None]],
                    group_of) -> dict:
    """Per collapse setting: mean distinct products in the top 10, nDCG@10 per group, latency.

    A query's own document (IKEA: the query text is in the pool) is left out by a
    ``post_filter``, before collapsing.  Each query runs once untimed (the service caches
    query embeddings), then every setting is timed on it in turn.
    """
    stats: dict[str, dict[str, list[float]]] = {n: {"distinct": [], "ndcg": [], "took": []} for n, _ in COLLAPSE_SETTINGS}
    for text, gains, own in queries:
        base: dict = {"query": {"hybrid": {"query": text}}, "size": 10, "_source": False}
        if own:
            base["post_filter"] = {"bool": {"must_not": [{"ids": {"values": [own]}}]}}
        httpx.post(f"{url}/{index}/_search", json=base, timeout=60).raise_for_status()
        for name, field in COLLAPSE_SETTINGS:
            body = {**base, "collapse": {"field": field}} if field else base
            t0 = time.perf_counter()
            resp = httpx.post(f"{url}/{index}/_search", json=body, timeout=60)
            stats[name]["took"].append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
            groups = [group_of(h["_id"]) for h in resp.json()["hits"]["hits"]]
            stats[name]["distinct"].append(len(set(groups)))
            stats[name]["ndcg"].append(ndcg_groups(groups, gains))
    return {name: {"queries": len(queries), "distinct_products_top10": round(statistics.mean(st["distinct"]), 2),
                   "ndcg10_per_group": round(statistics.mean(st["ndcg"]), 3),
                   "latency_p50_ms": round(statistics.median(st["took"]), 1)} for name, st in stats.items()}


def stack_report(docs: list[dict], groups: list[str], queries, index: str, codes: int | None) -> dict:
    from bench.runner import serve_in_thread
    from pipelines.engine.client import EngineClient
    from pipelines.ingest import semantic_ids

    s = get_settings()
    url, stop = serve_in_thread(s)
    group_by_id = dict(zip((d["id"] for d in docs), groups))
    try:
        with EngineClient(s, timeout_s=120) as engine:
            have = engine.count(index) if engine.index_exists(index) else 0
            if have != len(docs):
                engine.delete_index(index)
                load_index(url, index, docs)
            report = semantic_ids.fit_index(index, s, codes=codes, recode=False)  # deterministic: same data, same id
            bound = semantic_ids.index_quantizer(engine, index)
            if bound is None or bound.id != report.quantizer:
                semantic_ids.bind(engine, index, report.quantizer)
                load_index(url, index, docs)  # the same ids again, now with codes (bench only: the product
                # re-codes with `polyseek models semantic-ids fit`, a reindex behind the alias)
        result = {"index": index, "quantizer": report.quantizer, "sizes": report.sizes,
                  "groups_per_level": report.groups_per_level}
        result |= collapse_report(url, index, queries, group_by_id.get)
        return result
    finally:
        stop()


def demo_queries(docs: list[dict]) -> list[tuple[str, dict[str, float], None]]:
    """Gain 2 for the product asked for, 1 for products of the same category."""
    category = {d["id"].split("-")[0]: d["category"] for d in docs if d["id"].endswith("-en")}
    out = []
    for text, product in DEMO_QUERIES:
        gains = {p: 1.0 for p, c in category.items() if c == category[product]}
        gains[product] = 2.0
        out.append((text, gains, None))
    return out


def ikea_queries(docs: list[dict], groups: list[str], n: int) -> list[tuple[str, dict[str, float], str]]:
    """Foreign descriptions (every other one, up to ``n``): their product gains 1; their own text is skipped."""
    foreign = [(d, g) for d, g in zip(docs, groups) if d["lang"] != "en"][::2][:n]
    return [(d["description"], {g: 1.0}, d["id"]) for d, g in foreign]


def markdown(report: dict) -> str:
    lines = []
    for cat in report["pairs"]:
        lines += [f"\n### Same-product pairs: {cat['catalog']} ({cat['documents']} documents, "
                  f"{cat['products']} products)", "", "| codes/level (fitted) | level | groups | precision | recall | F1 |",
                  "|---|---|---|---|---|---|"]
        for f in cat["fits"]:
            for lv in f["levels"]:
                name = f"{f['codes']} ({f['sizes'][0]})" + ("" if f["centred"] else ", not centred per language")
                lines.append(f"| {name} | {lv['level']} | {lv['groups']} | {lv['precision']} | "
                             f"{lv['recall']} | {lv['f1']} |")
        lines += ["", "| min cosine | raw: precision | recall | centred per language: precision | recall | "
                      "centred + same level 1 (near-duplicates): precision | recall |", "|---|---|---|---|---|---|---|"]
        for c in cat["cosine"]:
            a, b, d = c["cosine_alone"], c["centred"], c["centred_with_level_1"]
            lines.append(f"| {c['min_cosine']} | {a['precision']} | {a['recall']} | {b['precision']} | {b['recall']} | "
                         f"{d['precision']} | {d['recall']} |")
    for name, st in report.get("stack", {}).items():
        lines += [f"\n### Collapse through the service: {name} (codes {st['sizes']}, groups per level "
                  f"{st['groups_per_level']})", "",
                  "| collapse | queries | distinct products in top 10 | nDCG@10 per product group | p50 ms |",
                  "|---|---|---|---|---|"]
        for k, _ in COLLAPSE_SETTINGS:
            r = st[k]
            lines.append(f"| {k} | {r['queries']} | {r['distinct_products_top10']} | {r['ndcg10_per_group']} | "
                         f"{r['latency_p50_ms']} |")
    c = report["cost"]
    lines += ["\n### Cost", "", f"fit 3x256 on 10k random unit vectors: {c['fit_s_10k_x_3x256']} s; encode: "
              f"{c['codes_per_s']} "
              f"codes/s; `_source` bytes per document: {c['source_bytes_per_doc']}; codebooks: "
              f"{c['codebooks_bytes']} bytes"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--ikea-queries", type=int, default=200)
    ap.add_argument("--no-stack", action="store_true", help="only the in-memory pair measurements")
    ap.add_argument("--stack-only", action="store_true", help="only collapse through the stack (pairs and cost "
                                                              "kept from the last run's JSON)")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    args = ap.parse_args(argv)
    cache = get_settings().cache_dir / "bench-semantic-ids"
    demo_docs, demo_groups = demo_catalog()
    ikea_docs, ikea_groups = ikea_catalog(args.data)
    demo_vecs = embed(demo_docs, cache / f"demo-{get_settings().dense_model}.npy")
    ikea_vecs = embed(ikea_docs, cache / f"ikea-val-{get_settings().dense_model}.npy")
    out_json = args.out / "semantic_ids.json"
    if args.stack_only:
        report: dict = json.loads(out_json.read_text())
    else:
        print("pairs ...", flush=True)
        report = {"pairs": [pairs_report("demo catalog", demo_vecs, demo_groups,
                                         [d["id"].split("-")[1] for d in demo_docs]),
                            pairs_report("IKEA val (en/de/fr)", ikea_vecs, ikea_groups,
                                         [d["lang"] for d in ikea_docs])],
                  "cost": cost_report(demo_vecs.shape[1])}
        print(markdown(report), flush=True)
    if not args.no_stack:
        print("through the stack ...", flush=True)
        report["stack"] = {
            "demo catalog": stack_report(demo_docs, demo_groups, demo_queries(demo_docs), "bench-sid-demo", None),
            "IKEA val": stack_report(ikea_docs, ikea_groups, ikea_queries(ikea_docs, ikea_groups, args.ikea_queries),
                                     "bench-sid-ikea", None)}
    args.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
