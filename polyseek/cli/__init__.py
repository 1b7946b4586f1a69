"""``polyseek`` command line: one entry point for engine, broker, models, ingest and service.

One module per area registers its subcommands: :mod:`.engine` (engine, broker), :mod:`.models`,
:mod:`.admin` (templates, kibana), :mod:`.serve`, :mod:`.ingest` (worker, ingest, reindex) and
:mod:`.eval` (a dev command, source checkout only). Nothing here imports ``bench`` or ``service`` at
import time; each command imports what it runs.
"""

from __future__ import annotations

import argparse

from polyseek.cli import admin, engine, ingest, models, serve
from polyseek.cli import eval as dev_eval

AREAS = (engine, models, admin, serve, ingest, dev_eval)


def build_parser() -> argparse.ArgumentParser:
    """The ``polyseek`` parser: every area's subcommands, each with its handler as ``func``."""
    parser = argparse.ArgumentParser(prog="polyseek", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for area in AREAS:
        area.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``polyseek`` command; returns its exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)
