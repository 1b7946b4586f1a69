"""``polyseek serve``: the query service (Elasticsearch REST API) under uvicorn."""

from __future__ import annotations

import argparse

from pipelines.settings import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app

    settings = get_settings()
    uvicorn.run(create_app(settings), host=args.host or settings.service_host, port=args.port or settings.service_port,
                log_level="warning", access_log=False)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` on the ``polyseek`` parser."""
    p = sub.add_parser("serve", help="run the query service (Elasticsearch REST API)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_serve)
