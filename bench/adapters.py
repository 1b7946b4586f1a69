"""Compare encoder adapters by exact kNN on the dev sets, in memory (no engine, no queue).

Each adapter is merged into the base, exported and quantized like a shipped one (int8,
the runtime's default); documents are embedded as the worker embeds them (first chunk);
scores are exact cosine top-10 with each query's own text removed.  This is for choosing
between candidates quickly; the numbers users get are ``polyseek eval``'s (real stack).

    python -m bench.adapters pipelines/models/adapters/e5-small-catalog-lora /tmp/ad/a [--limit 60]

Prints a table and writes ``bench/results/adapters.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench import datasets
from bench.evaluate import own_language_share, score

BENCHES = ("taxonomy-xling", "ikea-xling")


def build_candidate(adapter_dir: Path, model_dir: Path, base_name: str = "multilingual-e5-small"):
    """The base with ``adapter_dir`` merged, exported and quantized, in ``model_dir/cand-<name>``."""
    from pipelines.models.card import ModelPaths
    from pipelines.models.export import export_onnx, quantize_int8
    from pipelines.models.finetune import apply_adapter

    out = ModelPaths(model_dir / f"cand-{adapter_dir.name}")
    if not out.onnx_int8.exists():
        apply_adapter(ModelPaths(model_dir / base_name), out, adapter_dir)
        export_onnx(out)
        quantize_int8(out)
    return out


def exact_run(bench: datasets.Benchmark, queries: np.ndarray, docs: np.ndarray, doc_ids: list[str],
              k: int = 10) -> dict[str, dict[str, float]]:
    """Exact cosine top-``k`` of every query of ``bench`` (rows of ``queries``, in its order), its own
    document left out."""
    sims = queries @ docs.T
    run = {}
    for row, qid in enumerate(bench.queries):
        top = np.argsort(-sims[row])[:k + 1]
        hits = {doc_ids[i]: float(sims[row, i]) for i in top if doc_ids[i] != bench.own_doc.get(qid)}
        run[qid] = dict(list(hits.items())[:k])
    return run


def knn_run(encoder, bench: datasets.Benchmark, k: int = 10) -> dict[str, dict[str, float]]:
    """Exact cosine top-``k`` (plus own document, removed) for every query of ``bench``."""
    from pipelines.schema import embedding_text

    doc_ids = list(bench.corpus)
    docs = encoder.encode([embedding_text(bench.corpus[d]) for d in doc_ids]).dense
    queries = encoder.encode([text for text, _ in bench.queries.values()], is_query=True).dense
    return exact_run(bench, queries, docs, doc_ids, k)


def main(argv: list[str] | None = None) -> int:
    from pipelines.encoders.dense import TextEncoder
    from pipelines.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m bench.adapters", description=__doc__.split("\n")[0])
    parser.add_argument("adapters", nargs="+", type=Path, help="adapter folders (peft LoRA format)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--limit", type=int, help="queries per language (taxonomy) / pairs (IKEA)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/adapters.json"))
    args = parser.parse_args(argv)

    model_dir = get_settings().resolved_model_dir
    benches = {name: datasets.load(name, args.data, limit=args.limit) for name in BENCHES}
    results: dict[str, dict] = {}
    for adapter in args.adapters:
        paths = build_candidate(adapter, model_dir)
        encoder = TextEncoder(paths, "int8")
        row = {}
        for name, bench in benches.items():
            t0 = time.perf_counter()
            run = knn_run(encoder, bench)
            s = score(bench, run, detail=False)
            row[name] = {"ndcg@10": s["all"]["ndcg@10"], "own_lang@10": own_language_share(bench, run),
                         "seconds": round(time.perf_counter() - t0, 1)}
        results[str(adapter)] = row
        print(f"{adapter}: " + json.dumps(row), flush=True)

    print(f"\n{'adapter':<48}" + "".join(f"{b + ' nDCG@10':>24}{'own-lang':>10}" for b in BENCHES))
    for adapter, row in results.items():
        cells = "".join(f"{row[b]['ndcg@10']:>24.4f}{_fmt(row[b]['own_lang@10']):>10}" for b in BENCHES)
        print(f"{adapter[-48:]:<48}{cells}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
