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
             "terms": {"keyword", "boolean", "integer"}}  # a "conflict" (two types in one data view) is in none


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


def _data_view_fields(templates: tuple[str, ...]) -> dict[str, str]:
    """Field -> type over the indices a data view covers; a field typed differently in two of them is a
    ``conflict`` (as Kibana shows it)."""
    out: dict[str, str] = {}
    for template in templates:
        for field, kind in _mapping_types(template).items():
            out[field] = kind if out.get(field, kind) == kind else "conflict"
    return out


def _charted(state: dict, search_source: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """(field, aggregation) pairs and KQL queries of a visualization: aggregation-based or TSVB."""
    if state["type"] != "metrics":
        fields = [(a["params"]["field"], a["type"]) for a in state["aggs"] if "field" in a["params"]]
        return fields, [search_source["query"]["query"]]
    params = state["params"]
    fields, queries = [(params["time_field"], "date_histogram")], []
    for series in params["series"]:
        if series["split_mode"] == "terms":
            fields.append((series["terms_field"], "terms"))
        for metric in series["metrics"]:
            fields += [(metric["field"], metric["type"])] if "field" in metric else []
            queries += [metric[k]["query"] for k in ("numerator", "denominator") if k in metric]
    return fields, queries


def test_every_charted_field_exists_with_a_compatible_type():
    from es_templates.kibana import make_saved_objects as mk

    objects = {o["id"]: o for o in saved_objects()}
    checked = 0
    for obj in objects.values():
        if obj["type"] == "index-pattern":
            title, time_field, templates = mk.DATA_VIEWS[obj["id"]]
            assert obj["attributes"]["title"] == title
            if time_field:  # in every index the view covers, or their records fall out of the time filter
                assert all(_mapping_types(t)[time_field] == "date" for t in templates), obj["id"]
        if obj["type"] == "visualization":
            (ref,) = obj["references"]
            assert ref["id"] in objects and objects[ref["id"]]["type"] == "index-pattern"
            title, _, templates = mk.DATA_VIEWS[ref["id"]]
            fields = _data_view_fields(templates)
            state = json.loads(obj["attributes"]["visState"])
            if state["type"] == "metrics":  # TSVB: the data view by reference (Kibana 8), its title for OSD
                params = state["params"]
                assert params["index_pattern_ref_name"] == ref["name"] and params["use_kibana_indexes"]
                assert params["index_pattern"] == title
            search_source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            charted, queries = _charted(state, search_source)
            for field, agg_type in charted:
                assert field in fields, f"{obj['id']}: {field} not in the template"
                assert fields[field] in AGG_TYPES[agg_type], f"{obj['id']}: {field} is {fields[field]}"
                checked += 1
            for field in re.findall(r"(\w+):", " ".join(queries)):
                assert field in fields, f"{obj['id']}: {field} not in the template"
        if obj["type"] == "dashboard":
            for ref in obj["references"]:
                assert objects[ref["id"]]["type"] == "visualization"
    assert checked >= 20


def test_click_through_by_language_pair_charts():
    """Clicks split by the feedback's language pair; the click-through rate per query language divides
    feedback clicks (``event:click``) by query-log records (``not event:*``), split by the ``lang`` both
    indices carry: so ``event`` must stay out of the query log and ``lang`` be a keyword in both."""
    objects = {o["id"]: o for o in saved_objects()}
    pair = json.loads(objects["polyseek-vis-clicks-by-lang-pair"]["attributes"]["visState"])
    assert {"field": "lang_pair", "size": 12} == pair["aggs"][2]["params"]
    assert _mapping_types("feedback")["lang_pair"] == _mapping_types("feedback")["doc_lang"] == "keyword"
    ctr = json.loads(objects["polyseek-vis-ctr-by-language"]["attributes"]["visState"])["params"]
    (series,) = ctr["series"]
    (ratio,) = series["metrics"]
    assert (ratio["type"], ratio["numerator"]["query"], ratio["denominator"]["query"]) == (
        "filter_ratio", "event:click", "not event:*")
    assert "event" in _mapping_types("feedback") and "event" not in _mapping_types("query-log")
    assert series["terms_field"] == "lang"
    assert _mapping_types("feedback")["lang"] == _mapping_types("query-log")["lang"] == "keyword"
    assert series["formatter"] == "percent"
    dashboard = objects["polyseek-dashboard-search"]
    assert {"polyseek-vis-ctr-by-language", "polyseek-vis-clicks-by-lang-pair",
            "polyseek-vis-lang-pair-events"} <= {r["id"] for r in dashboard["references"]}
