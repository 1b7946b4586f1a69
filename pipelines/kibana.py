"""``polyseek kibana import``: upload es_templates/kibana/*.ndjson through Kibana's saved-objects API."""

from __future__ import annotations

import json

import httpx

from pipelines.engine.dialect import template_files


def saved_objects() -> list[dict]:
    """Every saved object shipped in es_templates/kibana/, parsed."""
    out = []
    for f in template_files("kibana", ".ndjson"):
        out += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def import_saved_objects(kibana_url: str, *, api_key: str | None = None, space: str | None = None,
                         opensearch_dashboards: bool = False, timeout_s: float = 60.0) -> dict:
    """POST each ndjson file to ``/api/saved_objects/_import?overwrite=true``; returns Kibana's answers."""
    headers = {"osd-xsrf": "true"} if opensearch_dashboards else {"kbn-xsrf": "true"}
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    prefix = f"/s/{space}" if space else ""
    results = {}
    with httpx.Client(base_url=kibana_url, headers=headers, timeout=timeout_s) as client:
        for f in template_files("kibana", ".ndjson"):
            resp = client.post(f"{prefix}/api/saved_objects/_import", params={"overwrite": "true"},
                               files={"file": (f.name, f.read_bytes(), "application/ndjson")})
            resp.raise_for_status()
            results[f.name] = resp.json()
    return results
