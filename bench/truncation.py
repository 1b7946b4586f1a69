"""nDCG@10 of the default encoder's vectors cut to fewer dimensions (Matryoshka-style), in memory.

Cheaper indexes at scale store the first d of the 384 dimensions (renormalised). The shipped
adapter was trained without a Matryoshka loss; this measures what truncating its vectors costs on
the dev sets: exact cosine top-10 as :mod:`bench.adapters` scores it (documents embedded as the
worker embeds them, each query's own text removed), each set embedded once.

    python -m bench.truncation [--dims 384 256 128 64] [--limit 150]

Prints a table and writes ``bench/results/truncation.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench import datasets
from bench.adapters import exact_run
from bench.evaluate import own_language_share, score

BENCHES = ("taxonomy-xling", "ikea-xling")


def truncated(vectors: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` components of each row, scaled back to unit length."""
    cut = vectors[:, :dims]
    return cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)


def main(argv: list[str] | None = None) -> int:
    from pipelines.encoders.dense import open_encoder
    from pipelines.schema import embedding_text
    from pipelines.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m bench.truncation", description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 256, 128, 64])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--limit", type=int, default=150, help="queries per language (taxonomy) / pairs (IKEA)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/truncation.json"))
    args = parser.parse_args(argv)

    settings = get_settings()
    encoder = open_encoder(settings.resolved_model_dir, settings.dense_model, settings.encoder_precision)
    results: dict[str, dict[int, dict]] = {}
    for name in BENCHES:
        bench = datasets.load(name, args.data, limit=None if name == "ikea-xling" else args.limit)
        doc_ids = list(bench.corpus)
        docs = encoder.encode([embedding_text(bench.corpus[d]) for d in doc_ids]).dense
        queries = encoder.encode([text for text, _ in bench.queries.values()], is_query=True).dense
        results[name] = {}
        for dims in args.dims:
            run = exact_run(bench, truncated(queries, dims), truncated(docs, dims), doc_ids)
            results[name][dims] = {"ndcg@10": score(bench, run, detail=False)["all"]["ndcg@10"],
                                   "own_lang@10": own_language_share(bench, run)}
            print(f"{name} d={dims}: {json.dumps(results[name][dims])}", flush=True)

    print(f"\n{'dims':>6}" + "".join(f"{b + ' nDCG@10':>26}{'own-lang':>10}" for b in BENCHES))
    for dims in args.dims:
        cells = ""
        for b in BENCHES:
            r = results[b][dims]
            own = "-" if r["own_lang@10"] is None else f"{r['own_lang@10']:.3f}"
            cells += f"{r['ndcg@10']:>26.4f}{own:>10}"
        print(f"{dims:>6}{cells}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": settings.dense_model, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
