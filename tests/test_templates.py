"""es_templates/ as the engine's contract: applied on the real engine, mappings checked;
Kibana saved objects checked against the mappings they chart."""

from __future__ import annotations

import json
import re

import pytest

from pipelines.engine import templates
from pipelines.engine.dialect import load_template
from pipelines.kibana import saved_objects

NUMERIC = {"float", "integer", "long", "double", "scaled_float", "short"}
AGG_TYPES = {"date_histogram": {"date"}, "percentiles": NUMERIC, "avg": NUMERIC, "sum": NUMERIC,
             "terms": {"keyword", "boolean", "integer"}}


@pytest.fixture(scope="module")
def applied(engine):
    first = templates.apply(engine)
    second = templates.apply(engine)  # idempotent
    assert first == second
    return first


def test_apply_installs_every_template_and_diff_is_clean(engine, applied):
    assert {"component:polyseek-products-text", "component:polyseek-products-vectors",
            "index:polyseek-products", "index:polyseek-query-log", "index:polyseek-dead-letter"} <= set(applied)
    assert templates.diff(engine) == {}


def test_diff_reports_drift(engine, applied):
    body = load_template("component/dead-letter.json")
    drifted = json.loads(json.dumps(body))
    drifted["template"]["mappings"]["properties"]["reason"] = {"type": "keyword"}
    engine.request("PUT", "/_component_template/polyseek-dead-letter", json_body=drifted)
    try:
        changes = templates.diff(engine)
        assert list(changes) == ["polyseek-dead-letter"]
        assert any("reason" in line for line in changes["polyseek-dead-letter"])
    finally:
        templates.apply(engine)
    assert templates.diff(engine) == {}


def test_index_created_from_templates_has_the_contract(engine, applied):
    from tests.conftest import RUN

    name = f"test-{RUN}-tpl-products"
    engine.request("PUT", f"/{name}")
    props = engine.request("GET", f"/{name}/_mapping")[name]["mappings"]["properties"]
    if engine.dialect.name == "opensearch":
        assert props["embedding"]["type"] == "knn_vector" and props["embedding"]["method"]["engine"] == "lucene"
        assert props["sparse"]["type"] == "rank_features"
    else:
        assert props["embedding"]["type"] == "dense_vector" and props["embedding"]["index_options"]["type"] == "int8_hnsw"
        assert props["sparse"]["type"] == "sparse_vector"
    assert props["title_fr"]["analyzer"] == "french" and props["title_ja"]["analyzer"] == "polyseek_cjk"
    log = f"polyseek-query-log-test-{RUN}"
    engine.request("PUT", f"/{log}")
    try:
        log_props = engine.request("GET", f"/{log}/_mapping")[log]["mappings"]["properties"]
        assert log_props["@timestamp"]["type"] == "date" and log_props["took_ms"]["type"] == "float"
    finally:
        engine.delete_index(log)


def _mapping_types(template_name: str) -> dict[str, str]:
    """Dotted field path -> type, including multi-fields, from a component template."""
    out: dict[str, str] = {}

    def walk(props: dict, prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "type" in spec:
                out[path] = spec["type"]
            for sub, sub_spec in spec.get("fields", {}).items():
                out[f"{path}.{sub}"] = sub_spec["type"]
            if "properties" in spec:
                walk(spec["properties"], f"{path}.")

    walk(load_template(f"component/{template_name}.json")["template"]["mappings"]["properties"], "")
    return out


def test_saved_objects_parse_with_stable_unique_ids():
    objects = saved_objects()
    ids = [o["id"] for o in objects]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"polyseek-[a-z0-9-]+", i) for i in ids)
    types = {o["type"] for o in objects}
    assert types == {"index-pattern", "visualization", "dashboard"}


def test_every_charted_field_exists_with_a_compatible_type():
    from es_templates.kibana import make_saved_objects as mk

    objects = {o["id"]: o for o in saved_objects()}
    checked = 0
    for obj in objects.values():
        if obj["type"] == "index-pattern":
            _, time_field, template = mk.DATA_VIEWS[obj["id"]]
            if time_field:
                assert _mapping_types(template)[time_field] == "date"
        if obj["type"] == "visualization":
            (ref,) = obj["references"]
            assert ref["id"] in objects and objects[ref["id"]]["type"] == "index-pattern"
            fields = _mapping_types(mk.DATA_VIEWS[ref["id"]][2])
            for agg in json.loads(obj["attributes"]["visState"])["aggs"]:
                if "field" in agg["params"]:
                    field = agg["params"]["field"]
                    assert field in fields, f"{obj['id']}: {field} not in the template"
                    assert fields[field] in AGG_TYPES[agg["type"]], f"{obj['id']}: {field} is {fields[field]}"
                    checked += 1
            query = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
            for field in re.findall(r"(\w+):", query):
                assert field in fields
        if obj["type"] == "dashboard":
            for ref in obj["references"]:
                assert objects[ref["id"]]["type"] == "visualization"
    assert checked >= 15
