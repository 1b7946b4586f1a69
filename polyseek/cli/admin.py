"""``polyseek templates|kibana``: install the engine contract and the Kibana saved objects."""

from __future__ import annotations

import argparse
import json

from pipelines.settings import get_settings


def _templates(args: argparse.Namespace) -> int:
    from pipelines.engine import templates
    from pipelines.engine.client import EngineClient

    with EngineClient(get_settings()) as engine:
        if args.action == "apply":
            for name in templates.apply(engine):
                print("applied", name)
            return 0
        changes = templates.diff(engine)
    for name, lines in changes.items():
        print(name)
        for line in lines:
            print("   ", line)
    print("in sync" if not changes else f"{len(changes)} template(s) differ")
    return 1 if changes else 0


def _kibana(args: argparse.Namespace) -> int:
    from pipelines.kibana import import_saved_objects

    result = import_saved_objects(args.url, api_key=args.api_key, space=args.space,
                                  opensearch_dashboards=args.opensearch_dashboards)
    print(json.dumps(result, indent=2))
    return 0 if all(r.get("success") for r in result.values()) else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``templates``, ``kibana`` on the ``polyseek`` parser."""
    p = sub.add_parser("templates", help="install es_templates/ on the engine, or show what differs")
    p.add_argument("action", choices=["apply", "diff"])
    p.set_defaults(func=_templates)
    p = sub.add_parser("kibana", help="import the saved objects (data views, dashboards) into Kibana")
    p.add_argument("action", choices=["import"])
    p.add_argument("--url", required=True, help="Kibana (or OpenSearch Dashboards) base URL")
    p.add_argument("--api-key")
    p.add_argument("--space")
    p.add_argument("--opensearch-dashboards", action="store_true", help="send osd-xsrf instead of kbn-xsrf")
    p.set_defaults(func=_kibana)
