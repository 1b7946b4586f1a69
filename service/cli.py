"""``polyseek`` command line: one entry point for engine, broker, models, ingest and service."""

from __future__ import annotations

import argparse
import json
import sys

from pipelines.settings import get_settings


def _engine(args: argparse.Namespace) -> int:
    from pipelines.engine.launcher import LocalEngine

    engine = LocalEngine(get_settings())
    if args.action == "start":
        print(engine.start().describe())
    elif args.action == "stop":
        print("stopped" if engine.stop() else "not running")
    else:
        status = engine.status()
        print(json.dumps(status.__dict__) if args.json else status.describe())
        return 0 if status.running else 3
    return 0


def _broker(args: argparse.Namespace) -> int:
    from pipelines import local_redis

    settings = get_settings()
    if args.action == "start":
        print(local_redis.start(settings))
    elif args.action == "stop":
        print("stopped" if local_redis.stop(settings) else "not running")
    else:
        up = local_redis.ping(settings)
        print(f"redis {'up' if up else 'down'} at {local_redis.redis_url(settings)}")
        return 0 if up else 3
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyseek", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("engine", help="local OpenSearch node on 127.0.0.1")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.set_defaults(func=_engine)

    p = sub.add_parser("broker", help="local redis for the Celery broker")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_broker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
