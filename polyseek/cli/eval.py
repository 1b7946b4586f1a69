"""``polyseek eval``: quality of every method on a dev benchmark, through the real stack.

A dev command: the evaluation lives in ``bench/``, which the wheel does not ship (it needs the ``dev``
extra and ``../shared/data``). It runs from a source checkout: ``python -m polyseek eval`` in the
repository, or ``polyseek eval`` from an editable install (``pip install -e .``), whose ``polyseek``
package sits beside ``bench/``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType


CHECKOUT = Path(__file__).resolve().parents[2]  # the repository, when this package runs from a checkout
NEEDS_CHECKOUT = ("polyseek eval is a dev command: it needs a source checkout of polyseek (bench/ and the dev extra, "
                  "`pip install -e '.[dev]'`); the installed package does not ship the benchmarks")


def eval_run() -> ModuleType:
    """``bench.eval_run``, imported on use: from the path, else from the checkout this package runs from.

    Raises :class:`ModuleNotFoundError` with :data:`NEEDS_CHECKOUT` when neither has it.
    """
    try:
        return importlib.import_module("bench.eval_run")
    except ModuleNotFoundError as exc:
        if exc.name != "bench" or not (CHECKOUT / "bench" / "eval_run.py").is_file():
            raise ModuleNotFoundError(f"{NEEDS_CHECKOUT} ({exc})", name=exc.name) from exc
    sys.path.insert(0, str(CHECKOUT))  # an editable install maps only the packages the wheel ships
    return importlib.import_module("bench.eval_run")


def _eval(args: argparse.Namespace) -> int:
    try:
        bench = eval_run()
    except ModuleNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    DEFAULT_DATA, run_eval = bench.DEFAULT_DATA, bench.run_eval
    for name in args.benchmark:
        report = run_eval(name, small=args.small, data_dir=args.data or DEFAULT_DATA, out_dir=args.out,
                          reranker=args.reranker, reuse_index=args.reuse_index, limit=args.limit,
                          only=args.method)
        print(f"\n== {report['benchmark']}: {report['queries']} queries, {report['documents']} documents "
              f"(ingest {report['ingest_s']} s)\n{report['table']}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``eval`` on the ``polyseek`` parser."""
    p = sub.add_parser("eval", help="dev command (source checkout with bench/ and the dev extra): quality of "
                                    "every method on a dev benchmark, through the real stack",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", action="append", required=True,
                   help="taxonomy-xling, taxonomy-xling-mixed or ikea-xling (repeatable)")
    p.add_argument("--small", action="store_true", help="the CI slice")
    p.add_argument("--data", type=Path, help="shared data folder (default ../shared/data)")
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    p.add_argument("--reranker", help="cross-encoder name in the model cache")
    p.add_argument("--reuse-index", action="store_true", help="skip ingest when the index is complete")
    p.add_argument("--limit", type=int, help="queries per language (taxonomy) / pairs (IKEA)")
    p.add_argument("--method", action="append",
                   help="only this method (repeatable; kNN always runs as the paired reference), e.g. bm25, "
                        "'hybrid (default)', 'engine score-sum'")
    p.set_defaults(func=_eval)
