"""``polyseek engine|broker``: the local engine node and the local redis broker."""

from __future__ import annotations

import argparse
import json

from pipelines.settings import get_settings


def _engine(args: argparse.Namespace) -> int:
    from pipelines.engine.launcher import LocalEngine

    settings = get_settings()
    if args.engine:  # another engine than the settings': its own default version unless --version
        settings = settings.model_copy(update={"engine": args.engine, "engine_version": args.version})
    elif args.version:
        settings = settings.model_copy(update={"engine_version": args.version})
    engine = LocalEngine(settings)
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``engine``, ``broker`` on the ``polyseek`` parser."""
    p = sub.add_parser("engine", help="local OpenSearch or Elasticsearch node on 127.0.0.1")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--engine", choices=["opensearch", "elasticsearch"],
                   help="engine to run (default: POLYSEEK_ENGINE); the URL stays POLYSEEK_ENGINE_URL")
    p.add_argument("--version", help="engine version (default: POLYSEEK_ENGINE_VERSION, else the engine's default)")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.set_defaults(func=_engine)
    p = sub.add_parser("broker", help="local redis for the Celery broker")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_broker)
