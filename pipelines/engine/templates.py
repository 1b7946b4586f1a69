"""``polyseek templates apply|diff``: es_templates/ as the engine's contract.

Component templates: every ``es_templates/component/*.json`` plus the dialect's
``es_templates/<dialect>/*.json`` (the vector field), each named ``polyseek-<file>``.
Index templates: ``es_templates/index/*.json``, named ``polyseek-<file>``.
The products templates are written for the default product field names; a catalog whose
``settings.product_fields`` differ gets them under its own names.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pipelines.engine.client import EngineClient
from pipelines.engine.dialect import load_template, template_files
from pipelines.schema import DEFAULT_PRODUCT_FIELDS, ProductFields

PRODUCT_FIELDS_TEMPLATES = ("products-text", "products-vectors")  # mappings that name product fields


@dataclass(frozen=True)
class Template:
    kind: str  # "component" or "index"
    name: str
    body: dict[str, Any]

    @property
    def path(self) -> str:
        return f"/_{'component' if self.kind == 'component' else 'index'}_template/{self.name}"


def templates_for(dialect: str, fields: ProductFields = DEFAULT_PRODUCT_FIELDS) -> list[Template]:
    """Component templates first (index templates compose them); the products mappings under ``fields``' names."""
    out = []
    for kind, folder in (("component", "component"), ("component", dialect), ("index", "index")):
        for f in template_files(folder):
            body = copy.deepcopy(load_template(f"{folder}/{f.name}"))
            stem = f.name.removesuffix(".json")
            if kind == "component" and stem in PRODUCT_FIELDS_TEMPLATES:
                mappings = body["template"]["mappings"]
                mappings["properties"] = fields.rename_properties(mappings["properties"])
            out.append(Template(kind, f"polyseek-{stem}", body))
    return out


def apply(engine: EngineClient) -> list[str]:
    """PUT every template (idempotent); returns the names written."""
    written = []
    for t in templates_for(engine.dialect.name, engine.settings.product_fields):
        engine.request("PUT", t.path, json_body=t.body)
        written.append(f"{t.kind}:{t.name}")
    return written


def _normalise(value: Any, under_settings: bool = False) -> Any:
    """Compare as the engine stores: scalars as strings, dotted keys expanded, settings under ``index``."""
    if isinstance(value, dict):
        if under_settings:
            value = {k if k.startswith("index") else f"index.{k}": v for k, v in value.items()}
        out: dict[str, Any] = {}
        for k, v in value.items():
            node, parts = out, k.split(".") if "." in k and not k.startswith("_") else [k]
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = _normalise(v, under_settings=(k == "settings"))
        return out
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return str(value).lower() if isinstance(value, bool) else str(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: value}


# keys the engine adds to a stored template by itself (Elasticsearch 9.x stamps creation/modification)
ENGINE_MANAGED_KEYS = ("created_date", "created_date_millis", "modified_date", "modified_date_millis")


def _installed(engine: EngineClient, t: Template) -> dict | None:
    resp = engine.request("GET", t.path, ok_statuses=(404,))
    items = (resp or {}).get("component_templates" if t.kind == "component" else "index_templates", [])
    if not items:
        return None
    body = items[0]["component_template" if t.kind == "component" else "index_template"]
    return {k: v for k, v in body.items() if k not in ENGINE_MANAGED_KEYS}


def diff(engine: EngineClient) -> dict[str, list[str]]:
    """Per template, the settings/mapping paths whose value differs from the engine's (empty: in sync)."""
    out: dict[str, list[str]] = {}
    for t in templates_for(engine.dialect.name, engine.settings.product_fields):
        have = _installed(engine, t)
        if have is None:
            out[t.name] = ["missing on the engine"]
            continue
        want_flat = _flatten(_normalise(t.body))
        have_flat = _flatten(_normalise(have))
        changes = [f"{path}: engine has {have_flat.get(path)!r}, es_templates has {v!r}"
                   for path, v in want_flat.items() if have_flat.get(path) != v]
        changes += [f"{path}: only on the engine" for path in have_flat if path not in want_flat]
        if changes:
            out[t.name] = changes
    return out
